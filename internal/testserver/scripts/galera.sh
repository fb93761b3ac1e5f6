#!/usr/bin/env bash
# galera.sh: a private 3-node MariaDB Galera cluster on loopback, for tests.
#
#   galera.sh start DIR     start 3 nodes, data under DIR (created), node 1
#                           bootstrapping the cluster (--wsrep-new-cluster);
#                           prints "PORTS p1 p2 p3" (the SQL ports) when all
#                           three are synced. Every port (SQL, group
#                           communication, IST, SST) is a free loopback port
#                           drawn at random: never 3306 or the default 4567.
#   galera.sh stop DIR      stop the nodes (thawing frozen ones) and remove DIR
#   galera.sh freeze DIR N  SIGSTOP node N (1-3): it stops answering, its peers
#                           evict it after the suspect timeout
#   galera.sh thaw DIR N    SIGCONT node N
#   galera.sh kill DIR N    SIGKILL node N
#
# Root connects from 127.0.0.1 without a password; the database "test"
# exists. Causality settings are the server's defaults (wsrep_sync_wait=0);
# the failure-detection timeouts are short (suspect 3 s) and a causal read
# on a node outside the primary component gives up after 5 s (the default
# repl.causal_read_timeout is 30 s), so that the tests that cut nodes off
# stay short. Installs galera-4 and rsync (apt-get) when they are missing.
set -euo pipefail

PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}

die() { echo "galera.sh: $*" >&2; exit 1; }

ensure_packages() {
  local need=()
  [ -e "$PROVIDER" ] || need+=(galera-4)
  command -v rsync >/dev/null || need+=(rsync)
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  if [ ${#need[@]} -gt 0 ]; then
    echo "galera.sh: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2; } ||
      die "cannot install ${need[*]}"
  fi
  [ -e "$PROVIDER" ] || die "no Galera provider at $PROVIDER (set GALERA_PROVIDER)"
}

# free_port sets PORT to a loopback TCP port nobody listens on, drawn at
# random from 20000-59999, not one already handed out by this script.
TAKEN=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    case "$TAKEN" in *" $p "*) continue ;; esac
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then
      TAKEN="$TAKEN$p "
      PORT=$p; return 0
    fi
  done
  die "no free port"
}

sql() { # node, statement
  mariadb --no-defaults -S "$DIR/n$1/sock" -u root -N -B -e "$2"
}

status() { # node, variable
  sql "$1" "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}'
}

wait_synced() { # node, seconds, want_size
  local n=$1 secs=$2 size=$3
  for _ in $(seq 1 $((secs * 10))); do
    if [ "$(status "$n" wsrep_local_state_comment)" = Synced ] &&
       [ "$(status "$n" wsrep_ready)" = ON ] &&
       [ "$(status "$n" wsrep_cluster_size)" -ge "$size" ] 2>/dev/null; then
      return 0
    fi
    kill -0 "$(cat "$DIR/n$n/pid" 2>/dev/null)" 2>/dev/null || { tail -30 "$DIR/n$n/err.log" >&2; die "node $n exited"; }
    sleep 0.1
  done
  tail -30 "$DIR/n$n/err.log" >&2
  die "node $n not synced after ${secs}s"
}

write_cnf() { # node
  local n=$1 d="$DIR/n$1"
  cat >"$d/my.cnf" <<CNF
[mariadbd]
user=mysql
datadir=$d/data
socket=$d/sock
pid-file=$d/mariadbd.pid
log-error=$d/err.log
bind-address=127.0.0.1
port=${SQLP[$n]}
skip-name-resolve
skip-log-bin
performance_schema=OFF
innodb_buffer_pool_size=32M
innodb_log_file_size=8M
innodb_flush_log_at_trx_commit=2
innodb_doublewrite=0
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=authdb_test_$$
wsrep_cluster_address=gcomm://127.0.0.1:${GCP[1]},127.0.0.1:${GCP[2]},127.0.0.1:${GCP[3]}
wsrep_node_name=n$n
wsrep_node_address=127.0.0.1:${GCP[$n]}
wsrep_node_incoming_address=127.0.0.1:${SQLP[$n]}
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:${SSTP[$n]}
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:${GCP[$n]};ist.recv_addr=127.0.0.1:${ISTP[$n]};gcache.size=32M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT5S;evs.keepalive_period=PT0.5S;pc.announce_timeout=PT1S;repl.causal_read_timeout=PT5S"
wsrep_slave_threads=2
CNF
}

start_node() { # node, extra args...
  local n=$1; shift
  /usr/sbin/mariadbd --defaults-file="$DIR/n$n/my.cnf" "$@" >>"$DIR/n$n/err.log" 2>&1 &
  echo $! >"$DIR/n$n/pid"
}

cmd_start() {
  ensure_packages
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  declare -gA SQLP GCP ISTP SSTP
  for n in 1 2 3; do
    free_port; SQLP[$n]=$PORT; free_port; GCP[$n]=$PORT
    free_port; ISTP[$n]=$PORT; free_port; SSTP[$n]=$PORT
  done
  for n in 1 2 3; do
    mkdir -p "$DIR/n$n/data"
    write_cnf "$n"
  done
  # The server runs as mysql (the rsync daemon of an SST, started by root,
  # would write as nobody).
  id mysql >/dev/null 2>&1 || useradd --system --no-create-home mysql
  chmod 755 "$DIR"
  chown -R mysql: "$DIR"
  # One installed data directory; the joiners receive theirs by SST.
  mariadb-install-db --defaults-file="$DIR/n1/my.cnf" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db >"$DIR/n1/install.log" 2>&1 || { cat "$DIR/n1/install.log" >&2; die "mariadb-install-db failed"; }
  start_node 1 --wsrep-new-cluster
  wait_synced 1 60 1
  sql 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test"
  # The joiners start from a copy of node 1's data after a clean shutdown
  # (grastate.dat then holds the cluster's UUID and seqno): they join with
  # no state transfer at all, where an rsync SST to two joiners (one at a
  # time, each followed by a recovery run) takes 20-30 s on a busy machine.
  p=$(cat "$DIR/n1/pid")
  kill -TERM "$p"
  for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "node 1 did not shut down"
  for n in 2 3; do
    rm -rf "$DIR/n$n/data"
    cp -a "$DIR/n1/data" "$DIR/n$n/data"
  done
  start_node 1 --wsrep-new-cluster
  wait_synced 1 60 1
  start_node 2
  start_node 3
  wait_synced 2 120 2
  wait_synced 3 120 3
  wait_synced 1 30 3
  echo "${SQLP[1]} ${SQLP[2]} ${SQLP[3]}" >"$DIR/ports"
  echo "PORTS ${SQLP[1]} ${SQLP[2]} ${SQLP[3]}"
}

pid_of() { cat "$DIR/n$1/pid" 2>/dev/null || die "no node $1 in $DIR"; }

cmd_stop() {
  [ -d "$DIR" ] || return 0
  local pids=()
  for n in 1 2 3; do
    [ -f "$DIR/n$n/pid" ] || continue
    p=$(cat "$DIR/n$n/pid")
    kill -CONT "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null && pids+=("$p")
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  # rsync daemons left by an interrupted SST
  rm -rf "$DIR"
}

DIR=${2:-}
case "${1:-}" in
  start) [ -n "$DIR" ] || DIR=$(mktemp -d "${TMPDIR:-/tmp}/authdb-galera.XXXXXX"); cmd_start ;;
  stop) [ -n "$DIR" ] || die "usage: galera.sh stop DIR"; cmd_stop ;;
  freeze) kill -STOP "$(pid_of "${3:?node}")" ;;
  thaw) kill -CONT "$(pid_of "${3:?node}")" ;;
  kill) kill -KILL "$(pid_of "${3:?node}")" ;;
  *) die "usage: galera.sh start|stop|freeze|thaw|kill DIR [N]" ;;
esac
