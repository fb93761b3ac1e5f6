# watchdog.sh: sourced by pg.sh and mariadb.sh (written beside them).
# watchdog: when AUTHDB_TESTSERVER_PARENT (the test binary) exits, kill the
# server (this shell's pid, which exec hands to the server) with SIGKILL.
watchdog() {
  [ -n "${AUTHDB_TESTSERVER_PARENT:-}" ] || return 0
  local me=$$
  (
    while kill -0 "$AUTHDB_TESTSERVER_PARENT" 2>/dev/null && kill -0 "$me" 2>/dev/null; do sleep 1; done
    kill -9 "$me" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 &
}
