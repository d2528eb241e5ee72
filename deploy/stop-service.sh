#!/usr/bin/env bash
# Stop a background service that one of the deploy/ start scripts launched, by its pid file:
# SIGTERM to its process group, wait up to TIMEOUT seconds, then SIGKILL. No error when it is
# not running; a stale pid file (dead pid, or a pid reused by a process whose command line lacks
# MATCH) is removed.
#
#   deploy/stop-service.sh LABEL PID_FILE MATCH [TIMEOUT=20]
set -euo pipefail

label="$1"
pid_file="$2"
match="$3"
timeout="${4:-20}"

if [[ ! -f "${pid_file}" ]]; then
    echo "${label} not running (no ${pid_file})"
    exit 0
fi
pid="$(<"${pid_file}")"
if ! [[ "${pid}" =~ ^[0-9]+$ ]] || ! kill -0 "${pid}" 2>/dev/null \
    || { [[ -r "/proc/${pid}/cmdline" ]] && ! grep -qa -- "${match}" "/proc/${pid}/cmdline"; }; then
    echo "${label} not running (stale pid file removed)"
    rm -f "${pid_file}"
    exit 0
fi

signal_all() {  # the process group when it has one (setsid), else the pid alone
    kill "-$1" -- "-${pid}" 2>/dev/null || kill "-$1" "${pid}" 2>/dev/null || true
}

signal_all TERM
start=${SECONDS}
while kill -0 "${pid}" 2>/dev/null || kill -0 -- "-${pid}" 2>/dev/null; do
    if ((SECONDS - start >= timeout)); then
        echo "${label} (pid ${pid}) still running after ${timeout} s; sending SIGKILL"
        signal_all KILL
        sleep 1
        break
    fi
    sleep 0.2
done
rm -f "${pid_file}"
echo "${label} stopped (pid ${pid})"
