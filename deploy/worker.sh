#!/usr/bin/env bash
# Apply labelgate's Prefect deployments and start a process worker in the background.
#
#   deploy/worker.sh            # after deploy/prefect/start.sh (and Label Studio, for review)
#   deploy/worker-stop.sh       # stops it
#
# 1. creates the work pool ${LABELGATE_WORK_POOL:-labelgate-process} (type process) if missing;
# 2. applies deploy/prefect.yaml (labeling-job, review-sync every 2 min, reaudit nightly), with LABELGATE_REPO set
#    to this checkout (the deployments' pull step runs flows from here);
# 3. starts `prefect worker start --type process` in its own process group, and waits until it
#    has registered with the server.
#
# Flow runs execute as child processes of the worker, with its environment. It passes on:
#   PREFECT_API_URL        (default http://127.0.0.1:${PREFECT_PORT:-4200}/api)
#   LABELGATE_STORE        (default <repo>/labelgate-store), LABELGATE_RUNS_DIR (<repo>/runs)
#   LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY   (from the caller, else `source deploy/secrets.sh`)
#   LABELGATE_API_URL, LABELGATE_WEBHOOK_SECRET (optional: webhooks to labelgate.api)
# Optional: LABELGATE_WORK_QUEUE (poll only this queue of the pool; default: all queues),
#   LABELGATE_WORKER_STATE (default var/prefect: worker.pid, worker.log),
#   LABELGATE_WORKER_LIMIT (at most this many flow runs at once; default: no limit),
#   LABELGATE_SKIP_DEPLOY=1 (start the worker only), LABELGATE_WORKER_START_TIMEOUT (60 s).
# Exits 0 once the worker runs, or at once when the one in the pid file already does.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/service-lib.sh
source "${repo_root}/deploy/service-lib.sh"
prefect="${repo_root}/.venv/bin/prefect"
pool="${LABELGATE_WORK_POOL:-labelgate-process}"
state_dir="${LABELGATE_WORKER_STATE:-${repo_root}/var/prefect}"
pid_file="${state_dir}/worker.pid"
log_file="${state_dir}/worker.log"
timeout="${LABELGATE_WORKER_START_TIMEOUT:-60}"

export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:${PREFECT_PORT:-4200}/api}"
export LABELGATE_REPO="${repo_root}"
export LABELGATE_STORE="${LABELGATE_STORE:-${repo_root}/labelgate-store}"
export LABELGATE_RUNS_DIR="${LABELGATE_RUNS_DIR:-${repo_root}/runs}"
if [[ -z "${LABEL_STUDIO_API_KEY:-}" && -z "${LABELGATE_LABELSTUDIO_API_KEY:-}" ]]; then
    # shellcheck disable=SC1091  # sourced at run time
    source "${repo_root}/deploy/secrets.sh"
fi

worker_started() { grep -q "started" "${log_file}" 2>/dev/null; }

running_pid() { service_pid "${pid_file}" worker; }

show_log() { service_log "${log_file}"; }

if pid="$(running_pid)"; then
    echo "Prefect worker already running (pid ${pid}), log ${log_file}; deploy/worker-stop.sh stops it"
    exit 0
fi
rm -f "${pid_file}"

if [[ ! -x "${prefect}" ]]; then
    echo "error: ${prefect} not found; create the project virtualenv first (make setup)" >&2
    exit 1
fi
if ! "${repo_root}/.venv/bin/python" - "${PREFECT_API_URL}/health" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1], timeout=5)
except Exception:
    sys.exit(1)
PY
then
    echo "error: no Prefect server answers at ${PREFECT_API_URL}; run deploy/prefect/start.sh" >&2
    exit 1
fi

cd "${repo_root}"
if ! "${prefect}" --no-prompt work-pool inspect "${pool}" >/dev/null 2>&1; then
    "${prefect}" --no-prompt work-pool create "${pool}" --type process >/dev/null
    echo "created work pool ${pool}"
fi
if [[ "${LABELGATE_SKIP_DEPLOY:-0}" != 1 ]]; then
    if ! out="$("${prefect}" --no-prompt deploy --all --prefect-file deploy/prefect.yaml 2>&1)"; then
        echo "${out}" >&2
        echo "error: prefect deploy failed" >&2
        exit 1
    fi
    echo "applied deploy/prefect.yaml (labeling-job, review-sync every 2 min, reaudit nightly)"
fi

# While no worker ran, the scheduler kept making review-sync runs; they are now late, and a worker
# would run every one of them (hundreds after a night). A missed backstop sync is worth nothing,
# as the next one checks everything: cancel the late ones before the worker starts.
# A review-sync run takes seconds; one still Running or Pending after 15 minutes lost its process
# (a worker killed mid-run) and holds the deployment's only concurrency slot, so every later sync
# would be cancelled and suspended jobs never resumed by the schedule: mark it Crashed.
"${repo_root}/.venv/bin/python" - <<'PY'
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter, DeploymentFilterName, FlowRunFilter, FlowRunFilterExpectedStartTime,
    FlowRunFilterState, FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Crashed

cutoff = datetime.now(timezone.utc) - timedelta(minutes=2)
with get_client(sync_client=True) as client:
    late = client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["review-sync"])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            expected_start_time=FlowRunFilterExpectedStartTime(before_=cutoff),
        ),
    )
    for run in late:
        client.set_flow_run_state(run.id, Cancelled(message="late review-sync skipped at worker start"), force=True)
    if late:
        print(f"cancelled {len(late)} late review-sync run(s): the next sync checks everything")
    stuck_since = datetime.now(timezone.utc) - timedelta(minutes=15)
    stuck = [
        run
        for run in client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["review-sync"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                ),
            ),
        )
        if (run.state.timestamp or stuck_since) < stuck_since
    ]
    for run in stuck:
        client.set_flow_run_state(
            run.id, Crashed(message="review-sync run without a process (found at worker start)"), force=True
        )
    if stuck:
        print(f"marked {len(stuck)} stuck review-sync run(s) Crashed: they held the sync's concurrency slot")
PY

mkdir -p "${state_dir}"
[[ -f "${log_file}" ]] && mv -f "${log_file}" "${log_file}.1"
queue_args=()
[[ -n "${LABELGATE_WORK_QUEUE:-}" ]] && queue_args=(--work-queue "${LABELGATE_WORK_QUEUE}")
[[ -n "${LABELGATE_WORKER_LIMIT:-}" ]] && queue_args+=(--limit "${LABELGATE_WORKER_LIMIT}")
launcher=()
command -v setsid >/dev/null && launcher=(setsid)  # own process group, so worker-stop.sh gets all of it
(
    exec ${launcher[@]+"${launcher[@]}"} "${prefect}" --no-prompt worker start --pool "${pool}" \
        --type process --name "labelgate-$(hostname)-$$" ${queue_args[@]+"${queue_args[@]}"}
) </dev/null >"${log_file}" 2>&1 &
pid=$!
echo "${pid}" >"${pid_file}"

start=${SECONDS}
wait_until_up "the Prefect worker" "start" "${pid}" "${pid_file}" "${timeout}" worker_started
echo "Prefect worker up (pid ${pid}) on pool ${pool}${LABELGATE_WORK_QUEUE:+, queue ${LABELGATE_WORK_QUEUE}}, log ${log_file}"
echo "  label store of its runs: ${LABELGATE_STORE}"
