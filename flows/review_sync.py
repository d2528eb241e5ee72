"""review-sync: resume labeling jobs whose review batch is complete (the webhook's backstop).

A deployed ``labeling-job`` run that waits for people is *suspended* (state type PAUSED, state
name "Suspended"): no process is held. Two things resume it once its batch is complete:

- the webhook receiver (``labelgate.api``), on Label Studio's annotation events;
- this flow, on a schedule (``deploy/prefect.yaml``: every 2 minutes), in case an event is lost.

Both decide the same way (``resume_complete_runs``), and only decide "complete? then resume":
the resumed run reads the answers itself (``tasks.review.collect_reviews``: those new since its
last sync from Label Studio, the others from the label store's mirror, upserted by annotation
id), so an event that arrives twice, late, out of order or never changes nothing about which
answers are counted. Resuming is idempotent: a run that someone else resumed first (the other
path, a person in the Prefect UI) is left alone, and is no error.

"Complete" is deliberately simple (``review_batch_status``): every task the run waits for has
its answers: at least ``spec.review.annotators_per_item``, and more where the flow asked for one
more person (adjudication, label certainty, active learning: ``LabelStudio.ask_for_more_answers``
raises the task's ``overlap``, and the count here follows it). A skip counts as an answer, as in
``collect_reviews``. The tasks a run waits for are the items it recorded in the label store
before it suspended (``LabelStore.save_awaited``), in the job's Label Studio project
(``tasks.review.project_title(spec)``, one project per label set). So a task the run no longer
asks about (one its routing dropped after people edited earlier answers, or an old job's
task of the same label set) does not keep it waiting. A run with no record (suspended by an
older version) waits for every task of the project. The check costs a few requests whatever the
project's size: Label Studio lists only the tasks it does not count as labeled, and the check
stops at the first awaited one that lacks answers.

Each sync also moves the progress bar on the page of each run still waiting
(``tasks/wait_progress.py``): for that it counts the awaited tasks exactly (it lists those of
them Label Studio does not count as labeled, by item id; the webhook's check still stops at the
first short task).

Each sync also removes the records of runs that ended without forgetting theirs (cancelled from
the Prefect UI while waiting, killed): ``forget_finished_waits``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
from prefect.flow_runs import resume_flow_run
from pydantic import ValidationError

from labelgate import run_logs
from labelgate.errors import LabelgateError, preview
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.review import connect_review_webhook, labelstudio_client, project_title
from tasks.wait_progress import move_wait_progress, progress_text

logger = logging.getLogger(__name__)

#: The flow whose suspended runs are resumed, and Prefect's name for a suspended state.
LABELING_FLOW = "labeling-job"
SUSPENDED = "Suspended"
#: What the resumed run receives as its ``ReviewDecision`` (flows/review_round.py).
RESUME_INPUT = {"accept_as_is": False}
_PAGE = 200  # the Prefect API's largest page


@dataclass(frozen=True)
class WaitingJob:
    """A suspended labeling-job run that waits for people in Label Studio."""

    flow_run_id: UUID
    flow_run_name: str
    spec: LabelingJobSpec


@dataclass(frozen=True)
class BatchStatus:
    """How far people got with one job's review batch.

    ``answered`` counts the tasks known to have their answers: exact when the batch is
    complete or the check was exact, a lower bound otherwise (the check stops at the first task
    that lacks answers).
    """

    project_id: int | None
    tasks: int
    answered: int
    required: int
    short: int = 0

    @property
    def complete(self) -> bool:
        """True when the project exists, has tasks, and no task lacks answers."""
        return self.project_id is not None and self.tasks > 0 and self.short == 0


# -- Label Studio side (takes the adapter) ----------------------------------------------------


def find_project(client: Any, title: str) -> int | None:
    """The id of the Label Studio project titled exactly ``title`` (the oldest), or None.

    Never creates one (``ensure_project`` would). ``client`` is the Label Studio adapter.
    """
    return client.find_project(title)


def review_batch_status(
    client: Any,
    spec: LabelingJobSpec,
    *,
    project_id: int | None = None,
    awaited: frozenset[str] | None = None,
    exact: bool = False,
) -> BatchStatus:
    """Whether every awaited task of the job's project has its answers (annotations plus skips,
    as ``collect_reviews`` counts them): ``spec.review.annotators_per_item``, or the task's
    ``overlap`` where labelgate asked for more.

    awaited: the item ids the run waits for (``LabelStore.awaited``); None waits for every task
    labelgate made in the project.

    ``client`` is the Label Studio adapter (``labelgate.labelstudio.LabelStudio`` or a fake with
    ``count_tasks`` and ``iter_tasks``; ``find_project`` too unless ``project_id`` is given).
    Two counts (none in an exact check of awaited tasks), then only the tasks Label Studio does
    not count as labeled (fewer annotators than their overlap) are listed, and the listing stops
    at the first awaited one that lacks answers; so the check costs a few requests whatever the
    project's size (plus the tasks that reach their count through skips, and those nobody waits
    for). Tasks without an item id (not made by labelgate) are ignored.

    exact: list every awaited task not counted as labeled, for an exact ``answered`` and
    ``short`` (the review-sync's progress bar). With ``awaited``, only those tasks are listed
    (``LabelStudio.iter_tasks(items=...)``), so the cost follows the batch, not the project;
    without, every task not counted as labeled is.
    """
    required = spec.review.annotators_per_item
    if project_id is None:
        project_id = find_project(client, project_title(spec))
    if project_id is None:
        return BatchStatus(None, 0, 0, required)
    foreign = short = 0
    if exact and awaited is not None:  # the awaited tasks only: the cost follows the batch
        tasks = answered = 0  # no counts needed: the listing gives the exact figure
        listing = client.iter_tasks(project_id, unlabeled=True, items=awaited, page_size=1000)
    else:
        tasks = client.count_tasks(project_id)
        answered = client.count_tasks(project_id, labeled=True)
        if awaited is not None:  # the tasks nobody waits for may all be among the labeled ones
            answered = max(0, answered - (tasks - len(awaited)))
        listing = client.iter_tasks(project_id, unlabeled=True, page_size=100)  # usually stops in page 1
    for task in listing:
        if task["item_id"] is None:
            foreign += 1
            continue
        if awaited is not None and task["item_id"] not in awaited:
            continue  # the run does not wait for it
        if task["overlap"] == 0:
            continue  # retired (LabelStudio.retire_tasks): no run asks about it
        if task["total_annotations"] + task["cancelled_annotations"] < max(required, task["overlap"]):
            short += 1
            if not exact:
                break  # one short task settles it
            continue
        answered += 1  # reaches the count through skips
    total = len(awaited) if awaited is not None else tasks - foreign
    if short and not exact:
        return BatchStatus(project_id, total, answered, required, short=short)
    return BatchStatus(project_id, total, total - short, required, short=short)


# -- Prefect side -----------------------------------------------------------------------------


def suspended_labeling_runs(*, log: Any = logger) -> Iterator[WaitingJob]:
    """Suspended ``labeling-job`` runs whose spec sends items to Label Studio, oldest first.

    Runs whose ``spec`` parameter does not parse are logged and skipped.
    """
    flow_filter = FlowFilter(name=FlowFilterName(any_=[LABELING_FLOW]))
    run_filter = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.PAUSED]),
            name=FlowRunFilterStateName(any_=[SUSPENDED]),
        )
    )
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=flow_filter,
                flow_run_filter=run_filter,
                sort=FlowRunSort.START_TIME_ASC,
                limit=_PAGE,
                offset=offset,
            )
            for run in runs:
                try:
                    spec = LabelingJobSpec.model_validate(run.parameters.get("spec"))
                except ValidationError as exc:
                    log.warning(
                        "flow run %s (%s): its spec parameter is not a valid job spec, skipped (%d errors)",
                        run.id,
                        run.name,
                        exc.error_count(),
                    )
                    continue
                if spec.review.mode == "labelstudio":
                    yield WaitingJob(run.id, run.name, spec)
            if len(runs) < _PAGE:
                return
            offset += _PAGE


def resume_waiting_run(flow_run_id: UUID, *, log: Any = logger) -> bool:
    """Resume a suspended run with ``RESUME_INPUT``; False when it was no longer waiting
    (resumed by someone else, cancelled, deleted): that is not an error."""
    try:
        resume_flow_run(flow_run_id, run_input=dict(RESUME_INPUT))
    except (NotPausedError, ObjectNotFound, FlowPauseTimeout, RuntimeError) as exc:
        # RuntimeError: the server rejected the resume (another path resumed it meanwhile)
        log.info("flow run %s is not waiting any more (%s); left alone", flow_run_id, type(exc).__name__)
        return False
    return True


def resume_complete_runs(
    client: Any,
    jobs: Iterable[WaitingJob],
    *,
    project_id: int | None = None,
    store: LabelStore | None = None,
    progress: bool = False,
    log: Any = logger,
) -> list[UUID]:
    """Resume each waiting job whose review batch is complete; return the resumed run ids.

    ``client`` is the Label Studio adapter; ``store`` (default: the settings' label store) holds
    the items each run waits for. With ``project_id`` (a webhook event), only jobs whose project
    is that one are checked. With ``progress`` (the review-sync), the progress bar on the page
    of each run still waiting (``tasks.wait_progress``) is moved, counted exactly (runs that
    suspended before bars existed have none, and keep the cheaper check). A failure for one job
    is logged and the others go on.
    """
    resumed: list[UUID] = []
    projects: dict[str, int | None] = {}
    store = store or LabelStore()
    for job in jobs:
        title = project_title(job.spec)
        try:
            if title not in projects:
                projects[title] = find_project(client, title)
            if project_id is not None and projects[title] != project_id:
                continue
            awaited = store.awaited(str(job.flow_run_id))
            bar = store.progress_artifact(str(job.flow_run_id)) if progress else None
            exact = bar is not None and awaited is not None  # a bar to move, at the batch's cost
            status = review_batch_status(
                client, job.spec, project_id=projects[title], awaited=awaited, exact=exact
            )
        except LabelgateError as exc:
            log.warning("flow run %s (%s): cannot check its review batch: %s", job.flow_run_id, title, exc)
            continue
        if not status.complete:
            log.info(
                "flow run %s (%s): review batch not complete (project %s, %d tasks, %s %d of "
                "them have their answers, %d or more each)",
                job.flow_run_name,
                job.flow_run_id,
                status.project_id,
                status.tasks,
                "exactly" if exact else "at least",
                status.answered,
                status.required,
            )
            if bar is not None:
                where = f"{client.url}/projects/{status.project_id}/data"
                text = progress_text(status.answered, status.tasks, where, by="review-sync")
                move_wait_progress(bar, status.answered, status.tasks, text, log=log)
            continue
        if resume_waiting_run(job.flow_run_id, log=log):
            log.info(
                "resumed flow run %s (%s): all %d tasks of project %s have their answers (%d or more each)",
                job.flow_run_name,
                job.flow_run_id,
                status.tasks,
                status.project_id,
                status.required,
            )
            resumed.append(job.flow_run_id)
    return resumed


def forget_finished_waits(store: LabelStore | None = None, *, log: Any = logger) -> list[str]:
    """Remove the records (``LabelStore.save_awaited``) of flow runs that wait for nothing any
    more: the run has ended (completed, failed, cancelled or crashed) or no longer exists. A run
    that is resumed or completes forgets its own; one cancelled from the Prefect UI while it
    waited, or killed, never does, and its record would keep its tasks on offer for good
    (``tasks.review.retire_unrouted``). Record names that are no flow run id are left alone.
    Returns the run ids forgotten."""
    store = store or LabelStore()
    forgotten: list[str] = []
    with get_client(sync_client=True) as prefect:
        for run_id in store.awaiting_runs():
            try:
                state = prefect.read_flow_run(UUID(run_id)).state
            except ValueError:
                continue  # not a flow run id: not ours to judge
            except ObjectNotFound:
                state = None
            if state is None or state.is_final():
                store.forget_awaited(run_id)
                forgotten.append(run_id)
    if forgotten:
        log.info(
            "%d flow run(s) that ended or no longer exist waited for items; their records are removed (%s)",
            len(forgotten),
            preview(forgotten),
        )
    return forgotten


def connect_webhooks(client: Any, jobs: Iterable[WaitingJob], *, log: Any = logger) -> int:
    """Make sure each waiting job's project calls the labelgate webhook receiver (idempotent),
    also for jobs that suspended before the receiver was configured. Returns how many projects
    have it. See ``tasks.review.connect_review_webhook``: never raises for a refusal."""
    done = 0
    for title in sorted({project_title(job.spec) for job in jobs}):
        try:
            project = find_project(client, title)
        except LabelgateError as exc:
            log.warning("cannot look up project %r: %s", title, exc)
            continue
        if project is not None and connect_review_webhook.fn(project):
            done += 1
    return done


# -- the flow ---------------------------------------------------------------------------------


@flow(name="review-sync", log_prints=False)
def review_sync() -> list[str]:
    """Resume every suspended labeling job whose review batch is complete in Label Studio.

    Returns the ids of the flow runs it resumed (as strings). Safe to run at any time, and
    concurrently with the webhook receiver.
    """
    run_logs.send_to_prefect()
    log = get_run_logger()
    forget_finished_waits(log=log)
    jobs = list(suspended_labeling_runs(log=log))
    if not jobs:
        log.info("no labeling job is waiting for people")
        return []
    with labelstudio_client() as client:
        connect_webhooks(client, jobs, log=log)
        resumed = resume_complete_runs(client, jobs, progress=True, log=log)
    log.info("%d labeling job(s) waiting, %d resumed", len(jobs), len(resumed))
    return [str(r) for r in resumed]
