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

# Succeed when GET $1 answers 200.
http_ok() { [[ "$(http_status "$1")" == 200 ]]; }

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
