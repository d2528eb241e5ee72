#!/usr/bin/env bash
# Start a local Label Studio (SQLite) in the background on 127.0.0.1:${LABEL_STUDIO_PORT:-8080}.
#
# Reads (required, no defaults; `source deploy/secrets.sh` provides them):
#   LABEL_STUDIO_USERNAME  admin e-mail
#   LABEL_STUDIO_PASSWORD  admin password
#   LABEL_STUDIO_API_KEY   legacy API token of the admin (> 5 characters)
# Optional: LABEL_STUDIO_PORT (8080), LABEL_STUDIO_START_TIMEOUT (180 s; the first start runs
# the database migrations, 80 s on a loaded 2-core machine, about 20 s after that).
#
# State: ${LABEL_STUDIO_STATE_DIR:-var/labelstudio}/ (database, media, labelstudio.pid,
# labelstudio.log). The test suite runs its own server this way, apart from the demo's.
# The admin user and its token are created on the first start only: a data dir made with
# another token keeps it (the token check below then fails and says so).
# Secrets reach Label Studio through its own environment variables, never the command line,
# so they do not show in `ps`. This script never prints them.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/service-lib.sh
source "${repo_root}/deploy/service-lib.sh"
port="${LABEL_STUDIO_PORT:-8080}"
timeout="${LABEL_STUDIO_START_TIMEOUT:-180}"
url="http://127.0.0.1:${port}"
state_dir="${LABEL_STUDIO_STATE_DIR:-${repo_root}/var/labelstudio}"
pid_file="${state_dir}/labelstudio.pid"
log_file="${state_dir}/labelstudio.log"
venv="${repo_root}/.labelstudio-venv"

missing=()
for name in LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD LABEL_STUDIO_API_KEY; do
    [[ -n "${!name:-}" ]] || missing+=("${name}")
done
if ((${#missing[@]})); then
    echo "error: ${missing[*]} not set; run \`source deploy/secrets.sh\` first" >&2
    exit 2
fi

running_pid() { service_pid "${pid_file}" label-studio; }

show_log() { service_log "${log_file}"; }

check_token() {
    local status
    status="$(http_status "${url}/api/projects" "${LABEL_STUDIO_API_KEY}")"
    case "${status}" in
        200) return 0 ;;
        401 | 403)
            echo "error: Label Studio at ${url} refuses LABEL_STUDIO_API_KEY (HTTP ${status})." >&2
            echo "  The admin and its token are set on the first start only: if ${state_dir}" >&2
            echo "  was created with other secrets, restore them or run deploy/labelstudio/stop.sh" >&2
            echo "  and delete ${state_dir} (this deletes its projects)." >&2
            ;;
        *) echo "error: GET ${url}/api/projects answered HTTP ${status}" >&2 ;;
    esac
    show_log
    return 1
}

report_up() {
    check_token || exit 1
    echo "Label Studio $1 at ${url}; token accepted"
}

prepare() { "${repo_root}/deploy/labelstudio/install.sh" >/dev/null; }

launch() {
    # Label Studio also reads unprefixed names (HOST, PORT, DATABASE_NAME, ...): keep
    # whatever the caller has under those names out of it.
    unset HOST PORT DATABASE_NAME DJANGO_DB USER_TOKEN
    export LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD
    export LABEL_STUDIO_USER_TOKEN="${LABEL_STUDIO_API_KEY}"
    export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true
    export SSRF_PROTECTION_ENABLED=false # dev only: lets webhooks reach a loopback receiver
    export LABEL_STUDIO_BASE_DATA_DIR="${state_dir}"
    export LABEL_STUDIO_COLLECT_ANALYTICS=false
    export LABEL_STUDIO_LATEST_VERSION_CHECK=false
    export LABEL_STUDIO_SENTRY_DSN="" LABEL_STUDIO_FRONTEND_SENTRY_DSN=""
    cd "${state_dir}"
    exec ${launcher[@]+"${launcher[@]}"} "${venv}/bin/label-studio" start --no-browser \
        --internal-host 127.0.0.1 --port "${port}" --data-dir "${state_dir}" \
        --username "${LABEL_STUDIO_USERNAME}" --enable-legacy-api-token
}

start_service "Label Studio" "${url}/health" '"UP"' "${state_dir}" "${pid_file}" "${log_file}" "${timeout}"
