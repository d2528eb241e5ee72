#!/usr/bin/env bash
# Install Label Studio into its own virtualenv (.labelstudio-venv/ in the repo root).
# Its dependency pins clash with labelgate's, so it never shares the project venv.
# Idempotent: a no-op when the pinned version is already installed.
#
# Env: LABEL_STUDIO_VERSION (default 1.23.2), LABEL_STUDIO_VENV (default <repo>/.labelstudio-venv),
#      PYTHON (default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="${LABEL_STUDIO_VERSION:-1.23.2}"
venv="${LABEL_STUDIO_VENV:-${repo_root}/.labelstudio-venv}"
python="${PYTHON:-python3}"

installed_version() {
    "${venv}/bin/python" -c \
        'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null || true
}

if [[ -x "${venv}/bin/label-studio" && "$(installed_version)" == "${version}" ]]; then
    echo "label-studio ${version} already installed in ${venv}"
    exit 0
fi

start=${SECONDS}
if [[ ! -x "${venv}/bin/python" ]]; then
    "${python}" -m venv "${venv}"
fi
if [[ ! -x "${venv}/bin/uv" ]]; then
    "${venv}/bin/pip" install -q --disable-pip-version-check uv
fi
"${venv}/bin/uv" pip install -q --compile-bytecode --python "${venv}/bin/python" "label-studio==${version}"

got="$(installed_version)"
if [[ "${got}" != "${version}" ]]; then
    echo "error: expected label-studio ${version} in ${venv}, found '${got:-nothing}'" >&2
    exit 1
fi
echo "label-studio ${version} installed in ${venv} in $((SECONDS - start)) s"
