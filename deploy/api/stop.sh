#!/usr/bin/env bash
# Stop the labelgate API started by deploy/api/start.sh (pid file in
# ${LABELGATE_API_STATE:-var/api}/), waiting up to LABELGATE_API_STOP_TIMEOUT (15 s) before
# SIGKILL. No error when it is not running.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state_dir="${LABELGATE_API_STATE:-${repo_root}/var/api}"
exec "${repo_root}/deploy/stop-service.sh" "labelgate API" "${state_dir}/api.pid" serve \
    "${LABELGATE_API_STOP_TIMEOUT:-15}"
