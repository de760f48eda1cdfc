#!/usr/bin/env bash
# tether.sh PARENT_PID COMMAND [ARGS...]   (TETHER_PIDFILE=path: write the child PID there)
# Runs COMMAND and ends it (TERM, then KILL after 5 s) when PARENT_PID dies or when this script gets
# TERM/INT/HUP, so a killed test runner or a Ctrl-C never leaves etcd or kube-apiserver behind.
set -u
parent=$1
shift
"$@" &
child=$!
[ -n "${TETHER_PIDFILE:-}" ] && echo "$child" >"$TETHER_PIDFILE"

finish() {
  if kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null
  fi
  wait "$child" 2>/dev/null
  exit 0
}
trap finish TERM INT HUP

while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5 &
  wait $!
done
if kill -0 "$child" 2>/dev/null; then finish; fi
wait "$child"
exit $?
