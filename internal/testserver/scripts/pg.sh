#!/usr/bin/env bash
# pg.sh: a private PostgreSQL 15 for authdb's tests: its own data directory,
# port and socket directory, trust authentication, never the shared server on
# 5432. Run as root it runs PostgreSQL as the postgres user (setpriv).
#
#   pg.sh init  DIR                      initdb into DIR/data (user postgres, trust)
#   pg.sh run   DIR PORT [NAME=VALUE...] exec the server in the foreground
#   pg.sh start DIR PORT [NAME=VALUE...] init if needed, start in the background, wait until ready
#   pg.sh stop  DIR                      fast shutdown (pg_ctl stop -m fast)
#
# NAME=VALUE are server settings, passed as -c NAME=VALUE (max_connections=10,
# ssl=on, ...). The server listens on 127.0.0.1:PORT and on the socket
# directory DIR/sock; connect with
#   psql "postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable"
# The binaries come from PGBIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

usage() { sed -n '2,17p' "$0" >&2; exit 2; }

# as_pg runs a command as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    exec_prefix=(setpriv --reuid=postgres --regid=postgres --init-groups --pdeathsig=keep --)
    "${exec_prefix[@]}" "$@"
  else
    "$@"
  fi
}

own() { # DIR: give the directory to postgres when we are root
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$1"; fi
  chmod 0700 "$1"
}

init() {
  local dir=$1
  mkdir -p "$dir/sock"
  own "$dir"
  if [ ! -s "$dir/data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # Tests may prepend lines (password users, hostssl) in DIR/hba.pre.
    {
      [ -f "$dir/hba.pre" ] && cat "$dir/hba.pre"
      echo "local all all trust"
      echo "host  all all 127.0.0.1/32 trust"
      echo "host  all all ::1/128 trust"
    } >"$dir/data/pg_hba.conf"
    own "$dir"
  fi
}

# watchdog (watchdog.sh, beside this script): when the test binary exits,
# the server is killed.
. "$(dirname "${BASH_SOURCE[0]}")/watchdog.sh"

run() {
  local dir=$1 port=$2; shift 2
  local args=(-D "$dir/data" -p "$port" -k "$dir/sock"
    -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off
    -c logging_collector=off -c shared_buffers=32MB -c max_wal_size=256MB)
  local s
  for s in "$@"; do args+=(-c "$s"); done
  watchdog
  if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups --pdeathsig=keep -- "$PGBIN/postgres" "${args[@]}"
  fi
  exec "$PGBIN/postgres" "${args[@]}"
}

case ${1:-} in
  init) [ $# = 2 ] || usage; init "$2" ;;
  run) [ $# -ge 3 ] || usage; shift; run "$@" ;;
  start)
    [ $# -ge 3 ] || usage
    init "$2"
    nohup "$0" run "${@:2}" >>"$2/server.log" 2>&1 &
    for _ in $(seq 1 300); do
      if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$3"; then
        echo "postgres://postgres@127.0.0.1:$3/postgres?sslmode=disable"; exit 0
      fi
      sleep 0.1
    done
    echo "pg.sh: not ready after 30s; see $2/server.log" >&2; exit 1 ;;
  stop) [ $# = 2 ] || usage; as_pg "$PGBIN/pg_ctl" -D "$2/data" -m fast -w stop ;;
  *) usage ;;
esac
