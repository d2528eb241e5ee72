# shellcheck shell=bash
# Helpers shared by the deploy/ start scripts. Source it: `source "${repo_root}/deploy/service-lib.sh"`.

# Print the HTTP status of GET $1 (000 when nothing answers). With a second argument, send
# it as a legacy token; it goes through the environment of python3, not its command line.
http_status() {
    PROBE_TOKEN="${2:-}" python3 - "$1" <<'PY'
import os, sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1])
if os.environ.get("PROBE_TOKEN"):
    request.add_header("Authorization", "Token " + os.environ["PROBE_TOKEN"])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(request, timeout=5) as response:
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code)
except Exception:
    print("000")
PY
}

# Print what answers GET $1: "up" when it is the service (HTTP 200 and a body containing $2),
# "none" when nothing answers, else what does ("HTTP 404", "HTTP 200 from another service").
service_health() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(urllib.request.Request(sys.argv[1]), timeout=5) as response:
        body = response.read(4096).decode("utf-8", "replace")
        ok = response.status == 200 and sys.argv[2] in body
        print("up" if ok else f"HTTP {response.status} from another service")
except urllib.error.HTTPError as error:
    print(f"HTTP {error.code}")
except Exception:
    print("none")
PY
}

# Succeed when GET $1 answers as the service (service_health: HTTP 200, body containing $2).
health_up() { [[ "$(service_health "$1" "$2")" == up ]]; }

# Print the pid in pid file $1 if that process runs and its command line contains $2
# (a guard against a pid recycled after a reboot); fail otherwise.
service_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(<"$1")"
    [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null || return 1
    if [[ -r "/proc/${pid}/cmdline" ]] && ! grep -qa -- "$2" "/proc/${pid}/cmdline"; then
        return 1
    fi
    echo "${pid}"
}

# Print the last 40 lines of log file $1 to stderr, if it exists.
service_log() {
    if [[ -f "$1" ]]; then
        echo "--- last lines of $1 ---" >&2
        tail -n 40 "$1" >&2
        echo "---" >&2
    fi
}

# start_lock NAME STATE_DIR TIMEOUT: one start at a time per state folder. A second start script
# (two test sessions, two terminals) waits here on fd 9, then finds the first one's server
# instead of starting another beside it. The server's own launch must close fd 9 (`exec 9>&-`),
# or it would hold the lock for good. Without flock, no lock.
start_lock() {
    mkdir -p "$2"
    command -v flock >/dev/null || return 0
    exec 9>"$2/start.lock"
    if ! flock -w "$3" 9; then
        echo "error: another start of $1 holds $2/start.lock after $3 s" >&2
        exit 1
    fi
}

# start_service NAME HEALTH_URL HEALTH_MARK STATE_DIR PID_FILE LOG_FILE TIMEOUT: what every start
# script does. One start at a time per state folder (start_lock). The server is up when
# HEALTH_URL answers 200 with HEALTH_MARK in its body (service_health: Label Studio and the API
# both answer /health, so the status alone would take one for the other). A server of PID_FILE
# that is up is reported, one still starting is waited for; a port that answers something else
# is an error. Otherwise the server is launched in the background, in its own process group (setsid,
# so stop-service.sh stops all of it), its output in LOG_FILE (the last one kept as .1), its pid
# in PID_FILE, and waited for (wait_until_up). The caller defines:
#   running_pid   print the pid of PID_FILE's server if it runs (service_pid), or fail;
#   show_log      print the end of LOG_FILE (service_log);
#   prepare       anything the first launch needs (checks, install); exit on failure;
#   launch        exec the server in the foreground, prefixed with "${launcher[@]}";
#   report_up HOW say the server is up: HOW is "already running (...)" or "up after N s (...)".
start_service() {
    local name="$1" health="$2" mark="$3" state_dir="$4" pid_file="$5" log_file="$6" timeout="$7"
    local pid status started
    start_lock "${name}" "${state_dir}" "${timeout}"
    if pid="$(running_pid)"; then
        if health_up "${health}" "${mark}"; then
            report_up "already running (pid ${pid})"
            exit 0
        fi
        echo "${name} (pid ${pid}) is starting; waiting for it"
    else
        rm -f "${pid_file}"
        status="$(service_health "${health}" "${mark}")"
        if [[ "${status}" == up ]]; then
            report_up "already running (not started by this script: no pid file)"
            exit 0
        elif [[ "${status}" != none ]]; then
            echo "error: ${health} answers ${status}: its port is taken by something that is not ${name}" >&2
            exit 1
        fi
        prepare
        mkdir -p "${state_dir}"
        [[ -f "${log_file}" ]] && mv -f "${log_file}" "${log_file}.1"
        launcher=()
        command -v setsid >/dev/null && launcher=(setsid)
        (
            exec 9>&- # the server must not hold the start lock
            launch
        ) </dev/null >"${log_file}" 2>&1 &
        pid=$!
        echo "${pid}" >"${pid_file}"
        echo "starting ${name} (pid ${pid}), log ${log_file}"
    fi
    started=${SECONDS}
    wait_until_up "${name}" "answer ${health}" "${pid}" "${pid_file}" "${timeout}" health_up "${health}" "${mark}"
    report_up "up after $((SECONDS - started)) s (pid ${pid})"
}

# wait_until_up NAME WHAT PID PID_FILE TIMEOUT CHECK...: run CHECK every half second until it
# succeeds. If process PID exits first, or TIMEOUT seconds pass (then its process group is
# stopped), say "NAME ... WHAT", remove PID_FILE, show the log (the caller's show_log) and exit 1.
wait_until_up() {
    local name="$1" what="$2" pid="$3" pid_file="$4" timeout="$5" started=${SECONDS}
    shift 5
    until "$@"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            echo "error: ${name} exited before it could ${what}" >&2
            rm -f "${pid_file}"
            show_log
            exit 1
        fi
        if ((SECONDS - started >= timeout)); then
            echo "error: ${name} did not ${what} within ${timeout} s; stopping it" >&2
            kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
            rm -f "${pid_file}"
            show_log
            exit 1
        fi
        sleep 0.5
    done
}
