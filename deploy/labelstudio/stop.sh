#!/usr/bin/env bash
# Stop the Label Studio started by deploy/labelstudio/start.sh (pid file in ${LABEL_STUDIO_STATE_DIR:-var/labelstudio}/),
# waiting up to LABEL_STUDIO_STOP_TIMEOUT (20 s) before SIGKILL. No error when it is not running.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "${repo_root}/deploy/stop-service.sh" "Label Studio" "${LABEL_STUDIO_STATE_DIR:-${repo_root}/var/labelstudio}/labelstudio.pid" \
    label-studio "${LABEL_STUDIO_STOP_TIMEOUT:-20}"
