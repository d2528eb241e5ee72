"""The HTTP API: jobs, label sets, the Label Studio webhook receiver, and health.

Routes (OpenAPI at ``/openapi.json``, docs at ``/docs``):

- ``GET /health``: no auth;
- ``POST /jobs``, ``POST /jobs/{id}/cancel``: bearer token with the ``submit`` scope;
- ``GET /jobs``, ``GET /jobs/{id}``, ``GET /label-sets...``: bearer token with the ``read`` scope;
- ``POST /webhooks/labelstudio``: Label Studio's shared-secret header.

Status codes live here and in the routers only: 400 a spec path outside the data roots, 401/403
auth, 404 an unknown job / label set / version, 409 a finished job to cancel or a reused
idempotency key, 422 an invalid body (each error with its field path in ``loc``), 502 Prefect
refused the run, 503 Prefect unreachable or the deployment not applied.

Run it: ``labelgate serve`` (or ``uvicorn --factory labelgate.api:create_app``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import labelgate
from labelgate.api import job_runs
from labelgate.api.jobs import router as jobs_router
from labelgate.api.label_sets import router as label_sets_router
from labelgate.api.webhooks import webhook_router

logger = logging.getLogger(__name__)


def create_app(*, check_project: Callable[[int], Any] | None = None) -> FastAPI:
    """Build the API. ``check_project`` replaces the resume check of webhook events (tests)."""
    app = FastAPI(
        title="labelgate",
        version=labelgate.__version__,
        description="Submit labeling jobs, follow them, and fetch the versioned label sets they publish.",
    )

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(jobs_router)
    app.include_router(label_sets_router)
    app.include_router(webhook_router(check_project=check_project))

    @app.exception_handler(job_runs.JobNotFound)
    async def not_found(request: Request, exc: job_runs.JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(job_runs.JobConflict)
    async def conflict(request: Request, exc: job_runs.JobConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(job_runs.DeploymentMissing)
    async def no_deployment(request: Request, exc: job_runs.DeploymentMissing) -> JSONResponse:
        logger.error("%s", exc)
        return JSONResponse({"detail": "the labeling deployment is not available"}, status_code=503)

    @app.exception_handler(httpx.HTTPError)
    async def prefect_failed(request: Request, exc: httpx.HTTPError) -> JSONResponse:
        # Prefect's client raises httpx errors: connection refused, timeouts, error answers
        logger.error("Prefect API call failed: %s: %s", type(exc).__name__, exc)
        response = getattr(exc, "response", None)
        if response is not None and 400 <= response.status_code < 500:
            # Prefect refused the request itself, e.g. parameters that do not fit the applied
            # deployment's schema (a deployment applied from older code)
            return JSONResponse(
                {
                    "detail": f"the orchestrator (Prefect) refused the run ({response.status_code}); "
                    "re-apply the deployments (deploy/worker.sh) if the spec model changed"
                },
                status_code=502,
            )
        return JSONResponse({"detail": "the orchestrator (Prefect) is unreachable"}, status_code=503)

    return app
