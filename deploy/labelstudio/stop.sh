#!/usr/bin/env bash
# Stop the Label Studio started by deploy/labelstudio/start.sh (pid file in var/labelstudio/).
# Sends SIGTERM to its process group, waits up to LABEL_STUDIO_STOP_TIMEOUT (20 s), then SIGKILL.
# No error when it is not running.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pid_file="${repo_root}/var/labelstudio/labelstudio.pid"
timeout="${LABEL_STUDIO_STOP_TIMEOUT:-20}"

if [[ ! -f "${pid_file}" ]]; then
    echo "Label Studio not running (no ${pid_file})"
    exit 0
fi
pid="$(<"${pid_file}")"
if ! [[ "${pid}" =~ ^[0-9]+$ ]] || ! kill -0 "${pid}" 2>/dev/null \
    || { [[ -r "/proc/${pid}/cmdline" ]] && ! grep -qa label-studio "/proc/${pid}/cmdline"; }; then
    echo "Label Studio not running (stale pid file removed)"
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
        echo "Label Studio (pid ${pid}) still running after ${timeout} s; sending SIGKILL"
        signal_all KILL
        sleep 1
        break
    fi
    sleep 0.2
done
rm -f "${pid_file}"
echo "Label Studio stopped (pid ${pid})"
