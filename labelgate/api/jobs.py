"""Jobs over HTTP: submit a ``LabelingJobSpec``, follow it, list jobs, cancel one.

A job is a flow run of the deployed labeling flow (:mod:`labelgate.api.job_runs`); its id is
the flow-run id, so the same job is found in the Prefect UI under that id.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from prefect.client.schemas.objects import StateType

from labelgate.api import job_runs
from labelgate.api.auth import require
from labelgate.api.data_paths import confine_spec
from labelgate.api.job_runs import Job, JobPage
from labelgate.errors import SpecError
from labelgate.settings import get_settings
from labelgate.spec import LabelingJobSpec

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Any printable ASCII string. A repeat returns the first job; no second run starts.",
    ),
]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post(
    "",
    status_code=202,
    response_model=Job,
    summary="Submit a labeling job",
    responses={
        200: {"model": Job, "description": "A repeated Idempotency-Key: the first job, unchanged."},
        400: {"description": "A file path in the spec is outside the allowed data folders."},
        409: {"description": "The Idempotency-Key was used before with a different spec."},
    },
    dependencies=[Depends(require("submit"))],
)
async def submit_job(
    spec: LabelingJobSpec, request: Request, response: Response, idempotency_key: IdempotencyKey = None
) -> Job:
    try:
        spec = confine_spec(spec, get_settings().data_roots)
    except SpecError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    async with job_runs.prefect_client() as client:
        run, replayed = await job_runs.submit_job(client, spec, idempotency_key=idempotency_key)
    job = job_runs.to_job(run, base_url=_base(request))
    response.headers["Location"] = job.links.self
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return job


@router.get(
    "",
    response_model=JobPage,
    summary="List jobs, newest first",
    dependencies=[Depends(require("read"))],
)
async def list_jobs(
    request: Request,
    state: Annotated[
        list[StateType] | None, Query(description="Only jobs in these Prefect state types.")
    ] = None,
    label_set: Annotated[
        str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="Only jobs of this label set.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobPage:
    async with job_runs.prefect_client() as client:
        runs = await job_runs.list_job_runs(
            client, state_types=state, label_set=label_set, limit=limit, offset=offset
        )
    base = _base(request)
    following = None
    if len(runs) == limit:
        query = request.query_params.multi_items()
        params = [(k, v) for k, v in query if k != "offset"] + [("offset", str(offset + limit))]
        following = f"{base}/jobs?{urlencode(params)}"
    return JobPage(
        items=[job_runs.to_job(run, base_url=base) for run in runs],
        limit=limit,
        offset=offset,
        next=following,
    )


@router.get(
    "/{job_id}",
    response_model=Job,
    summary="A job's state, stage, counts and label-set version",
    responses={404: {"description": "No such job."}},
    dependencies=[Depends(require("read"))],
)
async def read_job(job_id: UUID, request: Request) -> Job:
    async with job_runs.prefect_client() as client:
        run = await job_runs.read_job_run(client, job_id)
        stage = await job_runs.current_stage(client, run)
    version, counts = await run_in_threadpool(job_runs.published_version, run)
    project, review = await run_in_threadpool(job_runs.labelstudio_review, run)
    return job_runs.to_job(
        run,
        base_url=_base(request),
        stage=stage,
        label_set_version=version,
        counts=counts,
        review=review,
        labelstudio_project=project,
    )


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=Job,
    summary="Cancel a job",
    responses={404: {"description": "No such job."}, 409: {"description": "The job has finished."}},
    dependencies=[Depends(require("submit"))],
)
async def cancel_job(job_id: UUID, request: Request) -> Job:
    async with job_runs.prefect_client() as client:
        run = await job_runs.read_job_run(client, job_id)
        await job_runs.cancel_job_run(client, run)
        run = await client.read_flow_run(job_id)
    return job_runs.to_job(run, base_url=_base(request))
