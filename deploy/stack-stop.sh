#!/usr/bin/env bash
# Stop what deploy/stack.sh started, in reverse order: the API, the worker, Label Studio, the
# Prefect server (each by its pid file; what is not running is skipped). Runs the worker is
# executing are killed with it; suspended runs hold no process and resume after a restart.
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
status=0
for script in deploy/api/stop.sh deploy/worker-stop.sh deploy/labelstudio/stop.sh deploy/prefect/stop.sh; do
    bash "${repo_root}/${script}" || status=1
done
exit "${status}"
