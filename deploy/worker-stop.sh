#!/usr/bin/env bash
# Stop the Prefect worker that deploy/worker.sh started (its whole process group), by the pid in
# ${LABELGATE_WORKER_STATE:-var/prefect}/worker.pid. Runs it is executing are killed with it;
# suspended runs hold no process and are not affected.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${LABELGATE_WORKER_STATE:-${repo_root}/var/prefect}"
exec "${repo_root}/deploy/stop-service.sh" "Prefect worker" "${state_dir}/worker.pid" worker 15
