#!/bin/sh
# Entrypoint of the labelgate image (Dockerfile): `docker run labelgate serve ...` runs
# `labelgate serve ...`. A command that names another program on the PATH runs as is: that is
# what Prefect's Docker and Kubernetes workers send for a flow run (`prefect flow-run execute`),
# and what the compose worker uses (`sh -c "prefect deploy ... && prefect worker start ..."`).
set -e
if [ "$#" -gt 0 ] && [ "$1" != labelgate ] && [ "${1#-}" = "$1" ] && command -v "$1" >/dev/null 2>&1; then
    exec "$@"
fi
[ "${1:-}" = labelgate ] && shift
exec labelgate "$@"
