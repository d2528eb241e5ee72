"""Jobs of the HTTP API, kept as what they are: flow runs of the deployed labeling flow.

There is no second job database. A job's id is its Prefect flow-run id; its state, stage and
timings are the flow run's and its task runs'; its result is the label-set version whose
lineage names the flow run (``lineage.flow_run_id``). Tags on the run make the look-ups cheap:
``labelgate-api``, ``label-set:<name>`` and ``spec:<spec hash>``.

Idempotency: an ``Idempotency-Key`` becomes the flow run's Prefect idempotency key
(``api:<key>``), and the Prefect server then never makes a second run for it, even for two
requests at the same moment. A repeat is answered with the first job; a repeat whose spec
differs from the first is refused (409), as a key names one request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling
from pydantic import BaseModel, Field

from labelgate.errors import LabelgateError, StoreError
from labelgate.settings import get_settings
from labelgate.spec import LabelingJobSpec

logger = logging.getLogger(__name__)

API_TAG = "labelgate-api"
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}


class JobNotFound(LabelgateError, LookupError):
    """No labeling job has this id."""


class JobConflict(LabelgateError):
    """The request clashes with the job's state or with an earlier request."""


class DeploymentMissing(LabelgateError):
    """The labeling deployment is not applied on the Prefect server, or no server is set."""


def prefect_client() -> PrefectClient:
    """A client of the Prefect server at ``PREFECT_API_URL``. Without that setting Prefect would
    run jobs on a throw-away in-process server, which no worker sees: refuse instead."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise DeploymentMissing("PREFECT_API_URL is not set: the API needs a Prefect server with workers")
    return get_client()


class JobLinks(BaseModel):
    self: str = Field(description="This job in the API.")
    prefect_ui: str | None = Field(default=None, description="The flow run in the Prefect UI.")
    label_set: str | None = Field(default=None, description="The published version in the API.")
    labelstudio_project: str | None = Field(default=None, description="The review project, if any.")


class ReviewProgress(BaseModel):
    items: int = Field(description="The routed items the job waits for.")
    answered: int = Field(description="How many of them have all the answers they need, counted now.")


class Job(BaseModel):
    id: UUID = Field(description="The job id: the Prefect flow-run id.")
    name: str = Field(description="The flow run's name.")
    job: str | None = Field(default=None, description="The spec's name.")
    label_set: str | None = None
    state: str = Field(description="Prefect state name: Scheduled, Running, Suspended, Completed, ...")
    state_type: str = Field(description="Prefect state type: SCHEDULED, RUNNING, PAUSED, COMPLETED, ...")
    message: str | None = None
    stage: str | None = Field(default=None, description="The newest stage (task) of the run.")
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    label_set_version: int | None = Field(default=None, description="The version this job published.")
    counts: dict[str, int] | None = Field(default=None, description="Items per status in that version.")
    review: ReviewProgress | None = Field(
        default=None, description="While the job waits for people in Label Studio: how far they got."
    )
    links: JobLinks


class JobPage(BaseModel):
    items: list[Job]
    limit: int
    offset: int
    next: str | None = Field(default=None, description="The next page, if there may be one.")


# -- helpers -------------------------------------------------------------------------------


def _ui_link(flow_run_id: UUID) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


def _spec_of(run: FlowRun) -> dict[str, Any]:
    spec = (run.parameters or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _tag_value(run: FlowRun, prefix: str) -> str | None:
    return next((t[len(prefix) :] for t in run.tags or [] if t.startswith(prefix)), None)


def to_job(run: FlowRun, *, base_url: str, stage: str | None = None, **extra: Any) -> Job:
    spec = _spec_of(run)
    label_set = (spec.get("output") or {}).get("label_set") or _tag_value(run, "label-set:")
    links = JobLinks(self=f"{base_url}/jobs/{run.id}", prefect_ui=_ui_link(run.id))
    version = extra.pop("label_set_version", None)
    if version is not None and label_set:
        links.label_set = f"{base_url}/label-sets/{label_set}/versions/{version}"
    links.labelstudio_project = extra.pop("labelstudio_project", None)
    state = run.state
    return Job(
        id=run.id,
        name=run.name,
        job=spec.get("name"),
        label_set=label_set,
        state=state.name if state else "Unknown",
        state_type=state.type.value if state else "UNKNOWN",
        message=state.message if state else None,
        stage=stage,
        created=run.created,
        started=run.start_time,
        ended=run.end_time,
        label_set_version=version,
        links=links,
        **extra,
    )


async def labeling_deployment_id(client: PrefectClient) -> UUID:
    name = get_settings().deployment
    try:
        return (await client.read_deployment_by_name(name)).id
    except ObjectNotFound:
        raise DeploymentMissing(
            f"the Prefect deployment {name!r} is not applied; run deploy/worker.sh (or make stack)"
        ) from None


# -- operations ----------------------------------------------------------------------------


async def submit_job(
    client: PrefectClient, spec: LabelingJobSpec, *, idempotency_key: str | None
) -> tuple[FlowRun, bool]:
    """Start a flow run of the labeling deployment for ``spec``; returns (run, replayed).

    ``replayed`` is True when ``idempotency_key`` was seen before: the first run is returned and
    nothing new starts. A seen key with another spec raises :class:`JobConflict`.
    """
    deployment_id = await labeling_deployment_id(client)
    spec_tag = f"spec:{spec.spec_hash()}"
    key = f"api:{idempotency_key}" if idempotency_key else None
    if key:
        earlier = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=1,
        )
        if earlier:
            _check_same_spec(earlier[0], spec_tag)
            return earlier[0], True
    run = await client.create_flow_run_from_deployment(
        deployment_id,
        parameters={"spec": spec.model_dump(mode="json", by_alias=True)},
        name=spec.run_name,
        tags=[API_TAG, f"label-set:{spec.output.label_set}", spec_tag],
        idempotency_key=key,
        work_queue_name=get_settings().work_queue,
    )
    if key and spec_tag not in (run.tags or []):  # lost a race with a different first request
        _check_same_spec(run, spec_tag)
    return run, False


def _check_same_spec(run: FlowRun, spec_tag: str) -> None:
    if spec_tag not in (run.tags or []):
        raise JobConflict(
            f"this Idempotency-Key was first used for job {run.id} with a different spec; "
            "use a new key for a new job"
        )


async def read_job_run(client: PrefectClient, job_id: UUID) -> FlowRun:
    """The flow run of job ``job_id``; :class:`JobNotFound` unless it is a run of the labeling
    deployment."""
    deployment_id = await labeling_deployment_id(client)
    try:
        run = await client.read_flow_run(job_id)
    except ObjectNotFound:
        raise JobNotFound(f"no job {job_id}") from None
    if run.deployment_id != deployment_id:
        raise JobNotFound(f"no job {job_id}")
    return run


async def current_stage(client: PrefectClient, run: FlowRun) -> str | None:
    """The stage a run is at: 'waiting for review' while suspended, else its newest task's name."""
    if run.state and run.state.is_paused():
        return "waiting for review"
    task_runs = await client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))
    )
    if not task_runs:
        return None
    newest = max(task_runs, key=lambda t: t.start_time or t.expected_start_time or t.created)
    return newest.name.rsplit("-", 1)[0] if "-" in newest.name else newest.name


def published_version(run: FlowRun) -> tuple[int | None, dict[str, int] | None]:
    """The label-set version whose lineage names this run, and its counts per status."""
    from labelgate.store import LabelStore

    label_set = (_spec_of(run).get("output") or {}).get("label_set")
    if not label_set:
        return None, None
    try:
        versions = LabelStore().versions(label_set)
    except (StoreError, OSError, ValueError):  # no such set yet, or the store is unreadable
        return None, None
    except Exception as exc:  # deltalake raises its own types for a missing table
        logger.debug("cannot read versions of %s: %s", label_set, type(exc).__name__)
        return None, None
    for entry in versions:
        if entry["lineage"].get("flow_run_id") == str(run.id):
            counts = entry["lineage"].get("counts")
            return entry["version"], {k: int(v) for k, v in counts.items()} if counts else None
    return None, None


def labelstudio_review(run: FlowRun) -> tuple[str | None, ReviewProgress | None]:
    """The Label Studio project of a run that reviews there (else None), and while the run waits
    for people (*Suspended*) how many of the items it waits for have their answers, counted now
    (``flows.review_sync.review_batch_status``, exact). Both None when Label Studio or the store
    cannot be asked: a link is not worth failing the call."""
    spec = _spec_of(run)
    if (spec.get("review") or {}).get("mode") != "labelstudio":
        return None, None
    try:
        from flows.review_sync import SUSPENDED, find_project, review_batch_status
        from labelgate.store import LabelStore
        from tasks.review import labelstudio_client, project_title

        job = LabelingJobSpec.model_validate(spec)
        with labelstudio_client() as client:
            project = find_project(client, project_title(job))
            if project is None:
                return None, None
            progress = None
            awaited = None
            if run.state is not None and run.state.name == SUSPENDED:
                awaited = LabelStore().awaited(str(run.id))  # None: suspended by an older version
            if awaited is not None:  # counted at the batch's cost, not the project's
                status = review_batch_status(client, job, project_id=project, awaited=awaited, exact=True)
                progress = ReviewProgress(items=status.tasks, answered=status.answered)
    except Exception as exc:
        logger.info("no Label Studio link for job %s: %s", run.id, type(exc).__name__)
        return None, None
    return f"{get_settings().labelstudio_url.rstrip('/')}/projects/{project}", progress


async def list_job_runs(
    client: PrefectClient,
    *,
    state_types: list[StateType] | None,
    label_set: str | None,
    limit: int,
    offset: int,
) -> list[FlowRun]:
    """Runs of the labeling deployment, newest first."""
    deployment_id = await labeling_deployment_id(client)
    conditions: dict[str, Any] = {}
    if label_set:
        conditions["tags"] = FlowRunFilterTags(all_=[f"label-set:{label_set}"])
    if state_types:
        conditions["state"] = FlowRunFilterState(type=FlowRunFilterStateType(any_=state_types))
    run_filter = FlowRunFilter(**conditions)
    return await client.read_flow_runs(
        flow_run_filter=run_filter,
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=limit,
        offset=offset,
    )


async def cancel_job_run(client: PrefectClient, run: FlowRun) -> None:
    """Cancel a job: a running one goes to Cancelling (its worker stops the process); one that
    holds no process (scheduled, pending, suspended) is Cancelled at once. A finished job
    raises :class:`JobConflict`."""
    state = run.state
    if state is None or state.type in FINAL:
        raise JobConflict(f"job {run.id} is already {state.name if state else 'gone'}")
    message = "cancelled through the labelgate API"
    new = Cancelling(message=message) if state.type == StateType.RUNNING else Cancelled(message=message)
    result = await client.set_flow_run_state(run.id, new, force=True)
    if result.state is None or result.state.type not in {StateType.CANCELLING, StateType.CANCELLED}:
        raise JobConflict(f"job {run.id} could not be cancelled (it is {state.name})")
