#!/usr/bin/env bash
# Start the whole labelgate stack on this machine, without Docker: the local equivalent of
# deploy/docker-compose.yml, every service from its own deploy/ script.
#
#   1. Prefect server          deploy/prefect/start.sh       http://127.0.0.1:${PREFECT_PORT:-4200}
#   2. Label Studio            deploy/labelstudio/start.sh   http://127.0.0.1:${LABEL_STUDIO_PORT:-8080}
#      (1 and 2 start side by side: Label Studio's first start takes a minute)
#   3. work pool, deployments (deploy/prefect.yaml) and a process worker   deploy/worker.sh
#   4. the labelgate API       deploy/api/start.sh           http://127.0.0.1:${LABELGATE_API_PORT:-8000}
#
# Secrets come from `source deploy/secrets.sh` (var/secrets.env, made on first use); this
# script prints where they are, never their values. LABELGATE_API_URL (default: the API above)
# is where Label Studio sends its annotation webhooks; the worker and the API both get it.
# Each step reuses a service that already runs. Stop everything: deploy/stack-stop.sh.
#
# The state folders are fixed (var/prefect, var/labelstudio, var/api): one stack per checkout.
# The deployments are applied on every run. A worker that already runs keeps the environment
# it started with (LABEL_STUDIO_URL, LABELGATE_API_URL, ...): deploy/worker-stop.sh first to change it.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

export PREFECT_PORT="${PREFECT_PORT:-4200}"
export LABEL_STUDIO_PORT="${LABEL_STUDIO_PORT:-8080}"
export LABELGATE_API_PORT="${LABELGATE_API_PORT:-8000}"
export PREFECT_API_URL="http://127.0.0.1:${PREFECT_PORT}/api"
export LABEL_STUDIO_URL="http://127.0.0.1:${LABEL_STUDIO_PORT}"
export LABELGATE_API_URL="${LABELGATE_API_URL:-http://127.0.0.1:${LABELGATE_API_PORT}}"
export LABELGATE_STORE="${LABELGATE_STORE:-${repo_root}/labelgate-store}"
export LABELGATE_RUNS_DIR="${LABELGATE_RUNS_DIR:-${repo_root}/runs}"
# shellcheck source=deploy/secrets.sh
source "${repo_root}/deploy/secrets.sh"

step() { printf '\n== %s\n' "$*"; }

# shellcheck source=deploy/service-lib.sh
source deploy/service-lib.sh

# The start scripts keep one pid file per service in this checkout, whatever the port. Asked
# for another port than the one their service runs on, they would wait for it in vain and
# then stop it: refuse before anything starts instead.
running_elsewhere() {  # PID_FILE MATCH PORT LABEL
    local pid port
    pid="$(service_pid "$1" "$2")" || return 0
    port="$(tr '\0' '\n' <"/proc/${pid}/cmdline" 2>/dev/null | grep -A1 -x -- --port | tail -n 1)" || true
    if [[ -n "${port}" && "${port}" != "$3" ]]; then
        echo "error: $4 of this checkout already runs on port ${port} (pid ${pid}), not $3." >&2
        return 1
    fi
}
worker_elsewhere() {  # a worker of this checkout that polls another Prefect server
    local pid api
    pid="$(service_pid "${LABELGATE_WORKER_STATE:-${repo_root}/var/prefect}/worker.pid" worker)" || return 0
    api="$(tr '\0' '\n' <"/proc/${pid}/environ" 2>/dev/null | sed -n 's/^PREFECT_API_URL=//p')" || true
    if [[ -n "${api}" && "${api}" != "${PREFECT_API_URL}" ]]; then
        echo "error: the Prefect worker of this checkout (pid ${pid}) polls ${api}, not ${PREFECT_API_URL}." >&2
        return 1
    fi
}
if ! running_elsewhere var/prefect/prefect.pid prefect "${PREFECT_PORT}" "the Prefect server" \
    || ! running_elsewhere var/labelstudio/labelstudio.pid label-studio "${LABEL_STUDIO_PORT}" "Label Studio" \
    || ! running_elsewhere "${LABELGATE_API_STATE:-${repo_root}/var/api}/api.pid" serve "${LABELGATE_API_PORT}" \
        "the labelgate API" \
    || ! worker_elsewhere; then
    echo "  One stack per checkout: use the ports it runs on, or stop it first (deploy/stack-stop.sh)." >&2
    exit 1
fi

step "Prefect server and Label Studio"
ls_out="$(mktemp)"
trap 'rm -f "${ls_out}"' EXIT
bash deploy/labelstudio/start.sh >"${ls_out}" 2>&1 &
ls_pid=$!
echo "Label Studio starts alongside (a minute on its first start; log var/labelstudio/labelstudio.log)"
prefect_ok=1
bash deploy/prefect/start.sh || prefect_ok=0
ls_ok=1
wait "${ls_pid}" || ls_ok=0
sed 's/^/[label studio] /' "${ls_out}"
failed=()
((prefect_ok)) || failed+=("the Prefect server")
((ls_ok)) || failed+=("Label Studio")
if ((${#failed[@]})); then
    printf -v names '%s and ' "${failed[@]}"
    echo "error: the stack did not start: ${names% and } failed (see above)." >&2
    echo "  What did start keeps running; deploy/stack-stop.sh stops it." >&2
    exit 1
fi

step "work pool, deployments and a process worker"
if service_pid "${LABELGATE_WORKER_STATE:-${repo_root}/var/prefect}/worker.pid" worker >/dev/null; then
    # worker.sh leaves a running worker alone; the deployments are applied again all the same,
    # so that they match deploy/prefect.yaml and its process pool
    if ! out="$(LABELGATE_REPO="${repo_root}" .venv/bin/prefect --no-prompt deploy --all \
        --prefect-file deploy/prefect.yaml 2>&1)"; then
        echo "${out}" >&2
        echo "error: prefect deploy failed" >&2
        exit 1
    fi
    echo "applied deploy/prefect.yaml again"
fi
bash deploy/worker.sh

step "labelgate API"
bash deploy/api/start.sh

api="http://127.0.0.1:${LABELGATE_API_PORT}"
cat <<INFO

labelgate stack is up:
  Prefect UI      http://127.0.0.1:${PREFECT_PORT}        (Deployments: those of deploy/prefect.yaml)
  Label Studio    ${LABEL_STUDIO_URL}        (admin login: LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD)
  labelgate API   ${api}/docs   (OpenAPI: ${api}/openapi.json)
  webhooks        Label Studio -> ${LABELGATE_API_URL}/webhooks/labelstudio

Secrets and API tokens are in var/secrets.env (mode 600; this script never prints them):
  LABELGATE_API_TOKEN_SUBMIT  scopes read + submit
  LABELGATE_API_TOKEN_READ    scope read
  source deploy/secrets.sh && curl -H "Authorization: Bearer \$LABELGATE_API_TOKEN_READ" ${api}/jobs

Logs: var/prefect/prefect.log, var/prefect/worker.log, var/labelstudio/labelstudio.log, var/api/api.log
Label store: ${LABELGATE_STORE}
Stop it all: make stack-stop (deploy/stack-stop.sh)
INFO
