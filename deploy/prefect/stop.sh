#!/usr/bin/env bash
# Stop the Prefect server started by deploy/prefect/start.sh (pid file in ${PREFECT_STATE_DIR:-var/prefect}/), waiting
# up to PREFECT_STOP_TIMEOUT (20 s) before SIGKILL. No error when it is not running.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "${repo_root}/deploy/stop-service.sh" "Prefect server" "${PREFECT_STATE_DIR:-${repo_root}/var/prefect}/prefect.pid" \
    prefect "${PREFECT_STOP_TIMEOUT:-20}"
