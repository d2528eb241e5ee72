# syntax=docker/dockerfile:1
# labelgate: one image for the HTTP API, the Prefect worker and the flow runs.
#
#   docker build -t labelgate:latest .
#   docker run --rm -p 8000:8000 labelgate:latest serve --host 0.0.0.0      # the API
#   docker run --rm labelgate:latest prefect worker start --pool labelgate-process --type process
#
# The entrypoint (deploy/docker-entrypoint.sh) runs `labelgate <args>`, or the program named
# first when it is on the PATH (prefect, python, sh): Prefect's Docker and Kubernetes workers
# start flow runs with `prefect flow-run execute`. The code sits in /app, the folder that
# the deployments' pull step moves to (LABELGATE_REPO=/app when they are applied).
# deploy/docker-compose.yml builds and runs it; no secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    LABELGATE_REPO=/app \
    LABELGATE_STORE=/data/labelgate-store \
    LABELGATE_RUNS_DIR=/data/runs \
    LABELGATE_DATA_ROOTS='["/data/datasets"]' \
    PREFECT_RESULTS_LOCAL_STORAGE_PATH=/data/prefect-results

RUN groupadd --system --gid 10001 labelgate \
    && useradd --system --uid 10001 --gid labelgate --create-home --home-dir /home/labelgate \
        --shell /usr/sbin/nologin labelgate \
    && mkdir -p /data/labelgate-store /data/runs /data/datasets /data/prefect-results \
    && chown -R labelgate:labelgate /data

WORKDIR /app

# Dependencies first (read from pyproject.toml), so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY labelgate/ labelgate/
COPY flows/ flows/
COPY tasks/ tasks/
COPY validators/ validators/
COPY deploy/ deploy/
RUN pip install --no-deps . \
    && install -m 0755 deploy/docker-entrypoint.sh /usr/local/bin/labelgate-entrypoint

USER labelgate:labelgate
EXPOSE 8000
ENTRYPOINT ["labelgate-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
