# shellcheck shell=bash
# Local secrets for the dev/CI stack. Source it (bash only): `source deploy/secrets.sh`.
#
# On first use, writes var/secrets.env (mode 600, gitignored), one KEY=value a line:
#   LABEL_STUDIO_USERNAME=admin@labelgate.local
#   LABEL_STUDIO_PASSWORD, LABEL_STUDIO_API_KEY (40 hex characters)   Label Studio's admin
#   LABELGATE_WEBHOOK_SECRET        shared secret of Label Studio's webhook calls to the API
#   LABELGATE_API_TOKEN_SUBMIT      bearer token of the HTTP API, scopes read + submit
#   LABELGATE_API_TOKEN_READ        bearer token of the HTTP API, scope read
#   POSTGRES_PREFECT_PASSWORD, POSTGRES_LABELSTUDIO_PASSWORD   databases of deploy/docker-compose.yml
# A file made by an older version gets the keys it lacks appended; existing values never change.
# Then exports each variable of that file unless the environment already gives it a non-empty
# value, and LABELGATE_API_TOKENS (the API's JSON {token: [scopes]}) built from the two tokens,
# unless already set. It never prints a value, and it does not change the caller's shell options.
#
# The same file serves docker compose: `docker compose --env-file var/secrets.env -f deploy/docker-compose.yml up`.

if ! (return 0 2>/dev/null); then
    echo "deploy/secrets.sh must be sourced: source deploy/secrets.sh" >&2
    exit 1
fi

_labelgate_load_secrets() {
    local repo_root secrets_file line key
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    secrets_file="${repo_root}/var/secrets.env"
    mkdir -p "${repo_root}/var" || return 1

    # Create the file, or append the keys it lacks, under an exclusive lock: two shells that
    # race both end up reading the same secrets. Values go to the file only, never to stdout.
    if ! python3 - "${secrets_file}" <<'PY'
import fcntl, os, re, secrets, sys

path = sys.argv[1]
wanted = {
    "LABEL_STUDIO_USERNAME": lambda: "admin@labelgate.local",
    "LABEL_STUDIO_PASSWORD": lambda: secrets.token_urlsafe(24),
    "LABEL_STUDIO_API_KEY": lambda: secrets.token_hex(20),
    "LABELGATE_WEBHOOK_SECRET": lambda: secrets.token_urlsafe(24),
    "LABELGATE_API_TOKEN_SUBMIT": lambda: secrets.token_urlsafe(32),
    "LABELGATE_API_TOKEN_READ": lambda: secrets.token_urlsafe(32),
    "POSTGRES_PREFECT_PASSWORD": lambda: secrets.token_urlsafe(24),
    "POSTGRES_LABELSTUDIO_PASSWORD": lambda: secrets.token_urlsafe(24),
}
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
with os.fdopen(fd, "r+") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    text = handle.read()
    have = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", text, flags=re.MULTILINE))
    lines = []
    if not text:
        lines.append("# labelgate local secrets, made by deploy/secrets.sh. Never commit or print them.")
    lines += [f"{key}={make()}" for key, make in wanted.items() if key not in have]
    if lines:
        if text and not text.endswith("\n"):
            handle.write("\n")
        handle.write("\n".join(lines) + "\n")
        if text:
            print(f"deploy/secrets.sh: added {len(lines)} new secret(s) to {path}", file=sys.stderr)
        else:
            print(f"deploy/secrets.sh: generated {path}", file=sys.stderr)
os.chmod(path, 0o600)
PY
    then
        echo "deploy/secrets.sh: could not write ${secrets_file}" >&2
        return 1
    fi

    while IFS= read -r line || [[ -n "${line}" ]]; do
        [[ "${line}" =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! "${line}" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
            echo "deploy/secrets.sh: ignoring a malformed line in ${secrets_file}" >&2
            continue
        fi
        key="${BASH_REMATCH[1]}"
        if [[ -n "${!key:-}" ]]; then
            export "${key?}"  # keep the caller's value
        else
            export "${key}=${BASH_REMATCH[2]}"
        fi
    done <"${secrets_file}"

    # The API's token table (labelgate.settings api_tokens). The tokens are URL-safe base64,
    # so they need no JSON escaping.
    if [[ -z "${LABELGATE_API_TOKENS:-}" ]]; then
        export LABELGATE_API_TOKENS="{\"${LABELGATE_API_TOKEN_SUBMIT}\": [\"read\", \"submit\"], \"${LABELGATE_API_TOKEN_READ}\": [\"read\"]}"
    fi
}

if ! _labelgate_load_secrets; then
    unset -f _labelgate_load_secrets
    return 1
fi
unset -f _labelgate_load_secrets
