#!/usr/bin/env bash
# Put labelgate's deployments on a Docker or Kubernetes work pool (production path; the local
# default is the process pool of deploy/worker.sh).
#
#   PREFECT_API_URL=http://prefect:4200/api deploy/work-pools/deploy.sh docker       # pool labelgate-docker
#   PREFECT_API_URL=...                     deploy/work-pools/deploy.sh kubernetes   # pool labelgate-kubernetes
#
# 1. creates the pool from deploy/work-pools/<type>.json, or overwrites its base job template;
# 2. applies every deployment of deploy/prefect.yaml to that pool. `prefect deploy --all`
#    ignores --pool, so each deployment is applied on its own (`prefect deploy -n NAME --pool`).
#    The pull step moves to LABELGATE_REPO (default /app, where the labelgate image keeps the code).
# 3. docker only: the flow-run containers read LABEL_STUDIO_API_KEY and LABELGATE_WEBHOOK_SECRET
#    from the Prefect Secret blocks labelgate-labelstudio-api-key and labelgate-webhook-secret
#    (docker.json refers to them). When both variables are set (`source deploy/secrets.sh`),
#    this script saves them into those blocks; it never prints them. Kubernetes pods read
#    them from the Secret labelgate-secrets instead (kubernetes.json, envFrom).
# Optional: LABELGATE_WORK_POOL (default labelgate-<type>).
# The worker (`prefect worker start --pool labelgate-docker`) needs prefect-docker, or
# prefect-kubernetes, where it runs; this script only talks to the Prefect API.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
type="${1:-}"
case "${type}" in
    docker | kubernetes) ;;
    *)
        echo "usage: $0 docker|kubernetes" >&2
        exit 2
        ;;
esac
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server, e.g. http://127.0.0.1:4200/api}"
pool="${LABELGATE_WORK_POOL:-labelgate-${type}}"
template="${repo_root}/deploy/work-pools/${type}.json"
prefect="${PREFECT_BIN:-${repo_root}/.venv/bin/prefect}"
[[ -x "${prefect}" ]] || prefect="prefect"
export LABELGATE_REPO="${LABELGATE_REPO:-/app}"

cd "${repo_root}"
"${prefect}" --no-prompt work-pool create "${pool}" --type "${type}" \
    --base-job-template "${template}" --overwrite >/dev/null
echo "work pool ${pool} (type ${type}) has the base job template ${template#"${repo_root}/"}"

python="${repo_root}/.venv/bin/python"
[[ -x "${python}" ]] || python="python3"

if [[ "${type}" == docker ]]; then
    if [[ -n "${LABEL_STUDIO_API_KEY:-}" && -n "${LABELGATE_WEBHOOK_SECRET:-}" ]]; then
        "${python}" -c '
import os
from prefect.blocks.system import Secret
Secret(value=os.environ["LABEL_STUDIO_API_KEY"]).save("labelgate-labelstudio-api-key", overwrite=True)
Secret(value=os.environ["LABELGATE_WEBHOOK_SECRET"]).save("labelgate-webhook-secret", overwrite=True)
'
        echo "saved the Secret blocks labelgate-labelstudio-api-key and labelgate-webhook-secret"
    else
        echo "note: LABEL_STUDIO_API_KEY / LABELGATE_WEBHOOK_SECRET not set: the Secret blocks" \
            "labelgate-labelstudio-api-key and labelgate-webhook-secret must exist before a run starts" >&2
    fi
fi
names="$("${python}" -c '
import sys, yaml
for deployment in yaml.safe_load(open(sys.argv[1]))["deployments"]:
    print(deployment["name"])
' deploy/prefect.yaml)"
for name in ${names}; do
    if ! out="$("${prefect}" --no-prompt deploy --prefect-file deploy/prefect.yaml --name "${name}" \
        --pool "${pool}" 2>&1)"; then
        echo "${out}" >&2
        echo "error: prefect deploy of ${name} to ${pool} failed" >&2
        exit 1
    fi
    echo "deployment ${name} -> pool ${pool} (code in ${LABELGATE_REPO})"
done
