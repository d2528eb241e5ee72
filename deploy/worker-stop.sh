#!/usr/bin/env bash
# Stop the Prefect worker that deploy/worker.sh started (its whole process group), by the pid in
# ${LABELGATE_WORKER_STATE:-var/prefect}/worker.pid. Runs it is executing are killed with it;
# suspended runs hold no process and are not affected.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${LABELGATE_WORKER_STATE:-${repo_root}/var/prefect}"
pid_file="${state_dir}/worker.pid"

if [[ ! -f "${pid_file}" ]]; then
    echo "no worker pid file (${pid_file}); nothing to stop"
    exit 0
fi
pid="$(<"${pid_file}")"
if [[ ! "${pid}" =~ ^[0-9]+$ ]] || ! kill -0 "${pid}" 2>/dev/null \
    || { [[ -r "/proc/${pid}/cmdline" ]] && ! grep -qa worker "/proc/${pid}/cmdline"; }; then
    echo "worker (pid ${pid}) is not running"
    rm -f "${pid_file}"
    exit 0
fi
kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}"
for _ in $(seq 1 30); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "${pid}" 2>/dev/null; then
    echo "worker (pid ${pid}) did not stop within 15 s; killing it" >&2
    kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "${pid}" 2>/dev/null || true
fi
rm -f "${pid_file}"
echo "stopped the Prefect worker (pid ${pid})"
