#!/usr/bin/env bash
# Start the labelgate HTTP API (`labelgate serve`) in the background on
# ${LABELGATE_API_HOST:-127.0.0.1}:${LABELGATE_API_PORT:-8000}, from the project virtualenv.
#
# Environment of the API (labelgate.settings), passed on from the caller:
#   LABELGATE_API_TOKENS      bearer tokens and scopes; when unset, with every other secret,
#                             `source deploy/secrets.sh` provides them (var/secrets.env)
#   LABELGATE_WEBHOOK_SECRET, LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY   webhook receiver
#   PREFECT_API_URL           (default http://127.0.0.1:${PREFECT_PORT:-4200}/api) where jobs run
#   LABELGATE_STORE           (default <repo>/labelgate-store, as deploy/worker.sh)
#   LABELGATE_RUNS_DIR        (default <repo>/runs), LABELGATE_DATA_ROOTS (default <repo>/data)
# Optional: LABELGATE_API_STATE (default var/api: api.pid, api.log),
#   LABELGATE_API_START_TIMEOUT (60 s).
# Exits 0 once GET /health answers 200, or at once when it already does. Never prints a secret.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/service-lib.sh
source "${repo_root}/deploy/service-lib.sh"
host="${LABELGATE_API_HOST:-127.0.0.1}"
port="${LABELGATE_API_PORT:-8000}"
timeout="${LABELGATE_API_START_TIMEOUT:-60}"
probe_host="${host}"
[[ "${host}" == 0.0.0.0 ]] && probe_host=127.0.0.1
url="http://${probe_host}:${port}"
state_dir="${LABELGATE_API_STATE:-${repo_root}/var/api}"
pid_file="${state_dir}/api.pid"
log_file="${state_dir}/api.log"
labelgate="${repo_root}/.venv/bin/labelgate"

running_pid() { service_pid "${pid_file}" serve; }

show_log() { service_log "${log_file}"; }

report_up() {
    echo "labelgate API $1"
    echo "  API:  ${url}   docs: ${url}/docs"
    echo "  tokens: LABELGATE_API_TOKEN_SUBMIT / LABELGATE_API_TOKEN_READ in var/secrets.env"
}

prepare() {
    if [[ ! -x "${labelgate}" ]]; then
        echo "error: ${labelgate} not found; create the project virtualenv first (make setup)" >&2
        exit 1
    fi
    if [[ -z "${LABELGATE_API_TOKENS:-}" ]]; then
        # shellcheck disable=SC1091  # sourced at run time
        source "${repo_root}/deploy/secrets.sh"
    fi
}

launch() {
    export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:${PREFECT_PORT:-4200}/api}"
    export LABELGATE_STORE="${LABELGATE_STORE:-${repo_root}/labelgate-store}"
    export LABELGATE_RUNS_DIR="${LABELGATE_RUNS_DIR:-${repo_root}/runs}"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false
    cd "${repo_root}" # relative defaults of the settings (data roots, .env) are the repo's
    exec ${launcher[@]+"${launcher[@]}"} "${labelgate}" serve --host "${host}" --port "${port}"
}

if pid="$(running_pid)"; then
    running_port="$(tr '\0' '\n' <"/proc/${pid}/cmdline" 2>/dev/null | grep -A1 -x -- --port | tail -n 1)" || true
    if [[ -n "${running_port}" && "${running_port}" != "${port}" ]]; then
        echo "error: the labelgate API of ${pid_file} runs on port ${running_port} (pid ${pid}), not ${port};" \
            "stop it first (deploy/api/stop.sh) or set LABELGATE_API_STATE to another folder" >&2
        exit 1
    fi
fi

start_service "the labelgate API" "${url}/health" '"ok"' "${state_dir}" "${pid_file}" "${log_file}" "${timeout}"
