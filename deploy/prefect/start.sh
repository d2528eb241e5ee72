#!/usr/bin/env bash
# Start a local Prefect server (SQLite) in the background on 127.0.0.1:${PREFECT_PORT:-4200},
# from the project virtualenv (.venv/bin/prefect), with PREFECT_HOME=var/prefect.
#
# Optional env: PREFECT_PORT (4200), PREFECT_START_TIMEOUT (120 s), PREFECT_STATE_DIR (var/prefect).
# State: PREFECT_STATE_DIR (PREFECT_HOME: prefect.db, prefect.pid, prefect.log). The test
# suite runs its own server this way (tests/integration/conftest.py), apart from the demo's.
# Exits 0 once GET /api/health answers, or at once when it already does.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/service-lib.sh
source "${repo_root}/deploy/service-lib.sh"
port="${PREFECT_PORT:-4200}"
timeout="${PREFECT_START_TIMEOUT:-120}"
url="http://127.0.0.1:${port}"
state_dir="${PREFECT_STATE_DIR:-${repo_root}/var/prefect}"
pid_file="${state_dir}/prefect.pid"
log_file="${state_dir}/prefect.log"
prefect="${repo_root}/.venv/bin/prefect"

running_pid() { service_pid "${pid_file}" prefect; }

show_log() { service_log "${log_file}"; }

report_up() {
    echo "Prefect server $1"
    echo "  UI:  ${url}"
    echo "  API: export PREFECT_API_URL=${url}/api"
}

prepare() {
    if [[ ! -x "${prefect}" ]]; then
        echo "error: ${prefect} not found; create the project virtualenv first (make install)" >&2
        exit 1
    fi
}

launch() {
    export PREFECT_HOME="${state_dir}"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false
    # A client setting pointing elsewhere must not leak into the server's own services.
    unset PREFECT_API_URL PREFECT_API_KEY
    cd "${state_dir}"
    exec ${launcher[@]+"${launcher[@]}"} "${prefect}" server start \
        --host 127.0.0.1 --port "${port}" --no-background
}

start_service "Prefect server" "${url}/api/health" true "${state_dir}" "${pid_file}" "${log_file}" "${timeout}"
