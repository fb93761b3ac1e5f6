#!/usr/bin/env bash
# mariadb.sh: a private MariaDB 10.11 for authdb's tests: its own data
# directory, port and socket, root without a password, never the shared
# server on 3306.
#
#   mariadb.sh init  DIR                     mariadb-install-db into DIR/data
#   mariadb.sh run   DIR PORT [--option...]  exec mariadbd in the foreground
#   mariadb.sh start DIR PORT [--option...]  init if needed, start in the background, wait until ready
#   mariadb.sh stop  DIR                     shutdown through the socket
#
# --option are mariadbd options appended after the defaults (so they win):
# --character-set-server=latin1, --sql-mode=, --max-connections=10,
# --ssl-ca=... --ssl-cert=... --ssl-key=... The defaults are utf8mb4 (unless
# a --character-set-server or --collation-server is given) and the server's
# compiled-in sql_mode. The server listens on 127.0.0.1:PORT and on
# DIR/mysqld.sock; connect with  mariadb -h 127.0.0.1 -P PORT -u root
# (authdb URL mysql://root@127.0.0.1:PORT/test).
set -euo pipefail

usage() { sed -n '2,17p' "$0" >&2; exit 2; }

user=()
if [ "$(id -u)" = 0 ]; then user=(--user=root); fi

init() {
  local dir=$1
  mkdir -p "$dir/tmp"
  if [ ! -d "$dir/data/mysql" ]; then
    # Its own tmpdir: bootstraps running at once collide in a shared /tmp.
    mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" "${user[@]}" \
      --auth-root-authentication-method=normal --skip-test-db \
      --innodb-log-file-size=8M >"$dir/install.log" 2>&1 ||
      { cat "$dir/install.log" >&2; exit 1; }
    mkdir -p "$dir/data/test" # the database "test"
  fi
}

# watchdog (watchdog.sh, beside this script): when the test binary exits,
# the server is killed.
. "$(dirname "${BASH_SOURCE[0]}")/watchdog.sh"

run() {
  local dir=$1 port=$2; shift 2
  local charset=(--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci)
  case " $* " in *" --character-set-server="*|*" --collation-server="*) charset=() ;; esac
  mkdir -p "$dir/tmp"
  watchdog
  exec mariadbd --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" "${user[@]}" \
    --port="$port" --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --skip-name-resolve --skip-log-bin \
    --innodb-log-file-size=8M --innodb-buffer-pool-size=64M \
    --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    "${charset[@]}" "$@"
}

case ${1:-} in
  init) [ $# = 2 ] || usage; init "$2" ;;
  run) [ $# -ge 3 ] || usage; shift; run "$@" ;;
  start)
    [ $# -ge 3 ] || usage
    init "$2"
    nohup "$0" run "${@:2}" >>"$2/server.log" 2>&1 &
    for _ in $(seq 1 300); do
      if mariadb-admin --no-defaults -h 127.0.0.1 -P "$3" -u root ping >/dev/null 2>&1; then
        echo "mysql://root@127.0.0.1:$3/test"; exit 0
      fi
      sleep 0.1
    done
    echo "mariadb.sh: not ready after 30s; see $2/server.log" >&2; exit 1 ;;
  stop) [ $# = 2 ] || usage; mariadb-admin --no-defaults -S "$2/mysqld.sock" -u root shutdown ;;
  *) usage ;;
esac
