# shellcheck shell=bash
# Local secrets for the dev/CI stack. Source it (bash only): `source deploy/secrets.sh`.
#
# On first use, writes var/secrets.env (mode 600, gitignored) with a random
# LABEL_STUDIO_API_KEY (40 hex characters), a random LABEL_STUDIO_PASSWORD and
# LABEL_STUDIO_USERNAME=admin@labelgate.local. Then exports each variable of that file unless
# the environment already gives it a non-empty value. It never prints a value, and it does not
# change the caller's shell options.

if ! (return 0 2>/dev/null); then
    echo "deploy/secrets.sh must be sourced: source deploy/secrets.sh" >&2
    exit 1
fi

_labelgate_load_secrets() {
    local repo_root secrets_file tmp line key
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    secrets_file="${repo_root}/var/secrets.env"

    if [[ ! -f "${secrets_file}" ]]; then
        mkdir -p "${repo_root}/var" || return 1
        tmp="$(umask 077 && mktemp "${secrets_file}.XXXXXX")" || return 1
        if ! python3 - >"${tmp}" <<'PY'
import secrets

print("# labelgate local secrets, made by deploy/secrets.sh. Never commit or print them.")
print("LABEL_STUDIO_USERNAME=admin@labelgate.local")
print(f"LABEL_STUDIO_PASSWORD={secrets.token_urlsafe(24)}")
print(f"LABEL_STUDIO_API_KEY={secrets.token_hex(20)}")
print(f"LABELGATE_WEBHOOK_SECRET={secrets.token_urlsafe(24)}")
PY
        then
            rm -f "${tmp}"
            echo "deploy/secrets.sh: could not generate ${secrets_file}" >&2
            return 1
        fi
        chmod 600 "${tmp}"
        # A hard link never replaces an existing file: when two shells race, the first wins
        # and both read the same secrets.
        if ln "${tmp}" "${secrets_file}" 2>/dev/null; then
            echo "deploy/secrets.sh: generated ${secrets_file}" >&2
        fi
        rm -f "${tmp}"
    fi

    # files made before the webhook secret existed get one added
    if ! grep -q '^LABELGATE_WEBHOOK_SECRET=' "${secrets_file}"; then
        python3 -c 'import secrets; print(f"LABELGATE_WEBHOOK_SECRET={secrets.token_urlsafe(24)}")' \
            >>"${secrets_file}" || return 1
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
}

if ! _labelgate_load_secrets; then
    unset -f _labelgate_load_secrets
    return 1
fi
unset -f _labelgate_load_secrets
