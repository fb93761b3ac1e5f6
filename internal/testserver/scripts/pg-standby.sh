#!/usr/bin/env bash
# pg-standby.sh: a private PostgreSQL 15 primary with a streaming standby on
# loopback, for failover tests.
#
#   pg-standby.sh start DIR   initdb the primary, pg_basebackup -R the standby,
#                             start both, wait until the standby streams, then
#                             make it synchronous (synchronous_standby_names='*',
#                             synchronous_commit=on: a commit the primary
#                             acknowledges is on the standby; PG_STANDBY_SYNC=0
#                             leaves replication asynchronous). Prints
#                             "PORTS primary standby". Ports: free loopback
#                             ports drawn at random, never 5432.
#   pg-standby.sh stop DIR             stop both (thawing frozen ones), remove DIR
#   pg-standby.sh kill-primary DIR     SIGKILL the primary's postmaster and every
#                                      one of its processes (a crashed machine)
#   pg-standby.sh promote DIR          pg_ctl promote the standby, wait until it
#                                      accepts writes
#   pg-standby.sh freeze DIR primary|standby   SIGSTOP the server's processes
#   pg-standby.sh thaw DIR primary|standby     SIGCONT them
#
# Both servers trust every local connection; user postgres, database test.
# Running as root, the servers run as postgres (runuser).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
die() { echo "pg-standby.sh: $*" >&2; exit 1; }

TAKEN=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    case "$TAKEN" in *" $p "*) continue ;; esac
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then
      TAKEN="$TAKEN$p "; PORT=$p; return 0
    fi
  done
  die "no free port"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_at() { # port, statement
  as_pg "$PGBIN/psql" -X -q -A -t -h "$DIR" -p "$1" -U postgres -d postgres -c "$2"
}

postmaster_pid() { # primary|standby
  head -1 "$DIR/$1/postmaster.pid" 2>/dev/null || die "no $1 running in $DIR"
}

# server_pids prints the postmaster's pid and its children's.
server_pids() {
  local pm; pm=$(postmaster_pid "$1")
  echo "$pm"; ps -o pid= --ppid "$pm" || true
}

cmd_start() {
  [ -x "$PGBIN/initdb" ] || die "no PostgreSQL binaries in $PGBIN (set PGBIN)"
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
  free_port; P1=$PORT; free_port; P2=$PORT
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  chmod 755 "$DIR"
  as_pg "$PGBIN/initdb" -D "$DIR/primary" -U postgres -A trust --no-sync >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  cat >>"$DIR/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $P1
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
shared_buffers = 32MB
max_connections = 60
wal_sender_timeout = 5s
wal_receiver_status_interval = 1s
CONF
  cat >"$DIR/primary/pg_hba.conf" <<HBA
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
HBA
  as_pg "$PGBIN/pg_ctl" -D "$DIR/primary" -l "$DIR/primary.log" -w -t 60 start >/dev/null ||
    { tail -20 "$DIR/primary.log" >&2; die "primary did not start"; }
  psql_at "$P1" "CREATE DATABASE test" >/dev/null
  as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -U postgres -D "$DIR/standby" -R -X stream -c fast \
    -d "application_name=standby" >"$DIR/basebackup.log" 2>&1 || { cat "$DIR/basebackup.log" >&2; die "pg_basebackup failed"; }
  cat >>"$DIR/standby/postgresql.conf" <<CONF
port = $P2
CONF
  as_pg "$PGBIN/pg_ctl" -D "$DIR/standby" -l "$DIR/standby.log" -w -t 60 start >/dev/null ||
    { tail -20 "$DIR/standby.log" >&2; die "standby did not start"; }
  for _ in $(seq 1 300); do
    [ "$(psql_at "$P1" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
    sleep 0.1
  done
  [ "$(psql_at "$P1" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] ||
    { tail -20 "$DIR/standby.log" >&2; die "standby does not stream"; }
  if [ "${PG_STANDBY_SYNC:-1}" = 1 ]; then
    psql_at "$P1" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
    psql_at "$P1" "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 100); do
      [ "$(psql_at "$P1" "SELECT sync_state FROM pg_stat_replication")" = sync ] && break
      sleep 0.1
    done
    [ "$(psql_at "$P1" "SELECT sync_state FROM pg_stat_replication")" = sync ] || die "standby is not synchronous"
  fi
  echo "$P1 $P2" >"$DIR/ports"
  echo "PORTS $P1 $P2"
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  for s in primary standby; do
    [ -f "$DIR/$s/postmaster.pid" ] || continue
    for p in $(server_pids "$s"); do kill -CONT "$p" 2>/dev/null || true; done
    as_pg "$PGBIN/pg_ctl" -D "$DIR/$s" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}

cmd_kill_primary() {
  local pids; pids=$(server_pids primary)
  kill -KILL $pids 2>/dev/null || true
}

cmd_promote() {
  as_pg "$PGBIN/pg_ctl" -D "$DIR/standby" -w -t 60 promote >/dev/null
  read -r _ P2 <"$DIR/ports"
  for _ in $(seq 1 300); do
    [ "$(psql_at "$P2" "SELECT pg_is_in_recovery()")" = f ] && return 0
    sleep 0.05
  done
  die "standby still in recovery"
}

DIR=${2:-}
case "${1:-}" in
  start) [ -n "$DIR" ] || DIR=$(mktemp -d "${TMPDIR:-/tmp}/authdb-pgstandby.XXXXXX"); cmd_start ;;
  stop) [ -n "$DIR" ] || die "usage: pg-standby.sh stop DIR"; cmd_stop ;;
  kill-primary) cmd_kill_primary ;;
  promote) cmd_promote ;;
  freeze) for p in $(server_pids "${3:?primary or standby}"); do kill -STOP "$p"; done ;;
  thaw) for p in $(server_pids "${3:?primary or standby}"); do kill -CONT "$p"; done ;;
  *) die "usage: pg-standby.sh start|stop|kill-primary|promote|freeze|thaw DIR [primary|standby]" ;;
esac
