"""A deployed labeling job waits for people without holding a process, and is resumed when its
review batch is complete; the webhook receiver checks its shared secret.

Real servers: the Prefect server and Label Studio of ``tests/integration/conftest.py``, a
process worker started by ``deploy/worker.sh`` (it also applies ``deploy/prefect.yaml``) and
the labelgate API under uvicorn. The worker polls a work queue of its own (``test-<hex>``) in
the ``labelgate-process`` pool, and runs flows with this test's store, so the test can read
what the deployed run published.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.review_sync import (
    find_project,
    resume_complete_runs,
    resume_waiting_run,
    review_batch_status,
    suspended_labeling_runs,
)
from labelgate.bots import BotLabeler
from labelgate.labelstudio import WEBHOOK_SECRET_HEADER, LabelStudio
from labelgate.spec import LabelingJobSpec, load_spec
from labelgate.store import LabelStore
from tasks.review import project_title
from tasks.wait_progress import percent
from tests.conftest import make_text_frame, write_job
from tests.integration.stack import labelgate_api, process_worker, tail, wait_for

pytestmark = pytest.mark.integration

CLASSES = ["sports", "food", "tech"]
K = 2  # answers per item
BOTS = [{"accuracy": 1.0, "seed": 1}, {"accuracy": 1.0, "seed": 2}]  # agree: no extra annotator


def _processes_of(flow_run_id: str) -> list[int]:
    """Pids of live processes started for this flow run (the worker sets PREFECT__FLOW_RUN_ID)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return pids


@pytest.fixture(scope="module")
def worker(tmp_path_factory, prefect_server, labelstudio_server) -> Iterator[dict]:
    """A process worker on its own queue, with a store of this module's; stopped at the end."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    env = dict(os.environ)
    env.update(
        LABELGATE_STORE=str(tmp_path / "store"),
        LABELGATE_RUNS_DIR=str(tmp_path / "runs"),
        LABEL_STUDIO_URL=labelstudio_server.url,
        LABEL_STUDIO_API_KEY=labelstudio_server.api_key,
    )
    for name in ("LABELGATE_API_URL", "LABELGATE_WEBHOOK_SECRET"):
        env.pop(name, None)  # no receiver here: the sync resumes the run
    started = time.monotonic()
    with process_worker(tmp_path, env, prefect_server) as running:
        print(f"worker.sh (deploy + worker start): {time.monotonic() - started:.1f} s")
        yield {**running, "store": tmp_path / "store"}


def _text_job(folder: Path) -> tuple[dict, str, dict[str, str]]:
    """A small text job whose review goes to Label Studio with no bots: people must answer."""
    frame = make_text_frame(20, seed=7)
    truth = dict(zip(frame["id"], frame["label"], strict=True))
    rng = np.random.default_rng(7)
    flipped = rng.choice(len(frame), size=6, replace=False)
    swap = {"sports": "food", "food": "tech", "tech": "sports"}
    frame.loc[flipped, "label"] = frame.loc[flipped, "label"].map(swap)
    unlabeled = rng.choice(np.setdiff1d(np.arange(len(frame)), flipped), size=10, replace=False)
    frame.loc[unlabeled, "label"] = None
    label_set = f"dep-{uuid.uuid4().hex[:8]}"
    path = write_job(
        folder,
        frame,
        label_set=label_set,
        review={"mode": "labelstudio", "annotators_per_item": K, "audit_share": 0.3},
        autolabel={"target_accuracy": 0.9, "n_folds": 3},
    )
    spec = load_spec(path).model_dump(mode="json", by_alias=True)  # absolute paths
    return spec, label_set, truth


class DeployedJob:
    """One labeling job run through the labeling-job deployment, and the checks on it."""

    def __init__(self, folder: Path, prefect, ls: LabelStudio, worker: dict) -> None:
        self.spec, self.label_set, self.truth = _text_job(folder)
        self.prefect, self.ls, self.worker = prefect, ls, worker
        self.run = None
        self.project = None
        self.tasks: dict[str, int] = {}
        self.answers = 0
        self.unawaited: set[str] = set()
        self.timings: dict[str, float] = {}

    def state(self, run_id=None):
        return self.prefect.read_flow_run(run_id or self.run.id).state

    def fail_if_final(self, state) -> None:
        if state.is_final():
            pytest.fail(
                f"flow run ended {state.name}: {state.message}\n{tail(self.worker['log'])}", pytrace=False
            )

    def submit_and_wait_until_suspended(self) -> None:
        started = time.monotonic()
        self.run = run_deployment(
            "labeling-job/labeling-job",
            parameters={"spec": self.spec},
            work_queue_name=self.worker["queue"],
            timeout=0,
            as_subflow=False,
        )

        def suspended():
            state = self.state()
            self.fail_if_final(state)
            return state.is_paused() and state.name == "Suspended"

        wait_for("the job to suspend", suspended, timeout=150)
        self.timings["submit -> suspended"] = time.monotonic() - started

        # no process is held for the waiting run: the worker's child process has exited
        wait_for("the run's process to exit", lambda: not _processes_of(str(self.run.id)), timeout=30)
        assert os.path.exists(f"/proc/{self.worker['pid']}")  # while the worker itself goes on
        assert str(self.run.id) in {str(j.flow_run_id) for j in suspended_labeling_runs()}

        spec = LabelingJobSpec.model_validate(self.spec)
        self.project = find_project(self.ls, project_title(spec))
        assert self.project is not None
        self.tasks = self.ls.task_index(self.project)
        assert self.tasks, "the job routed nothing to review"
        status = review_batch_status(self.ls, spec, project_id=self.project)
        assert not status.complete and status.answered == 0
        # what the sync and the webhook check: the items the run recorded before it suspended
        assert LabelStore(str(self.worker["store"])).awaited(str(self.run.id)) == set(self.tasks)
        self.check_labelgate_lines_on_the_run_page()

    def check_labelgate_lines_on_the_run_page(self) -> None:
        """labelgate's own INFO lines (progress steps, the Label Studio adapter's) are in the run's
        log in the Prefect UI, not only in the worker's log file (labelgate.run_logs)."""
        of_the_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.run.id]))
        logs = self.prefect.read_logs(log_filter=of_the_run)
        ours = {(log.name, log.message) for log in logs if log.name.split(".")[0] in ("labelgate", "tasks")}
        assert any(
            name == "labelgate.progress" and message.startswith("out-of-sample: model 1 of")
            for name, message in ours
        ), sorted(ours)
        assert any(name == "labelgate.labelstudio.imports" for name, _ in ours), sorted(ours)

    def progress_bar(self):
        """The wait's progress artifact on the run's page (tasks/wait_progress.py): there is one."""
        of_the_run = ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[self.run.id]),
            type=ArtifactFilterType(any_=["progress"]),
        )
        bars = self.prefect.read_artifacts(artifact_filter=of_the_run)
        assert len(bars) == 1, [(b.id, b.created, b.data, b.description) for b in bars]
        return bars[0]

    def add_a_task_nobody_waits_for(self) -> None:
        """An unanswered task of the same label set that this run does not wait for (an old
        job's, or one a routing dropped after people edited answers)."""
        frame = pd.DataFrame(
            {"item_id": ["old-job-item"], "data": [{"text": "an old task"}], "route_reason": ["old job"]}
        )
        assert self.ls.import_items(self.project, frame) == 1
        self.unawaited.add("old-job-item")

    def people_answer(self) -> None:
        """Bots answer every task K times while nothing runs."""
        for n, bot in enumerate(BOTS):
            self.answers += BotLabeler(f"bot{n + 1}@labelgate.local", **bot).work(
                self.ls, self.project, truth=self.truth, classes=CLASSES, max_per_task=K
            )
        assert self.answers == K * len(self.tasks)
        spec = LabelingJobSpec.model_validate(self.spec)
        assert review_batch_status(self.ls, spec, project_id=self.project).complete

    def wait_until_completed(self, since: float, what: str) -> None:
        def completed():
            state = self.state()
            if state.is_final() and not state.is_completed():
                self.fail_if_final(state)
            return state.is_completed()

        wait_for("the resumed job to complete", completed, timeout=150)
        self.timings[f"{what} -> job completed"] = time.monotonic() - since

    def check_published_once(self) -> None:
        # resuming again (a late webhook event, the next sync tick) is no error and does nothing
        assert resume_waiting_run(self.run.id) is False
        assert str(self.run.id) not in {str(j.flow_run_id) for j in suspended_labeling_runs()}
        # no duplicate tasks: one task per routed item, the same ones as before the wait
        index = self.ls.task_index(self.project)
        assert {item: task for item, task in index.items() if item not in self.unawaited} == self.tasks
        assert len(self.ls.list_tasks(self.project)) == len(self.tasks) + len(self.unawaited)
        assert LabelStore(str(self.worker["store"])).awaited(str(self.run.id)) is None  # done waiting

        store = LabelStore(str(self.worker["store"]))
        assert store.latest_version(self.label_set) == 0
        rows = store.read(self.label_set).set_index("item_id")
        reviewed = rows.loc[list(self.tasks)]
        assert (reviewed["source"] == "human").all()
        assert (reviewed["label"] == [self.truth[i] for i in reviewed.index]).all()  # the bots were right
        events = store.events(label_set=self.label_set)
        assert (events["source"] == "human").sum() == self.answers  # none lost, none counted twice
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))


@pytest.fixture
def deployed_job(tmp_path, prefect_server, labelstudio_server, worker) -> Iterator[DeployedJob]:
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as prefect,
        LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as ls,
    ):
        yield DeployedJob(tmp_path / "job", prefect, ls, worker)


def test_deployed_job_suspends_without_a_process_and_the_sync_resumes_it(deployed_job, worker):
    job = deployed_job
    job.submit_and_wait_until_suspended()
    job.people_answer()
    job.add_a_task_nobody_waits_for()  # it does not keep the run waiting

    # the review-sync deployment (what the 2-minute schedule runs) resumes it
    started = time.monotonic()
    sync = run_deployment(
        "review-sync/review-sync", work_queue_name=worker["queue"], timeout=0, as_subflow=False
    )

    def sync_done():
        state = job.state(sync.id)
        return state if state.is_final() else None

    sync_state = wait_for("the review-sync run", sync_done, timeout=120)
    # the 2-minute schedule may have a review-sync run going already: the deployment's
    # concurrency limit (1, cancel the newcomer) then cancels this one, and that run resumes the job
    overlapped = sync_state.is_cancelled() and "concurrency limit" in (sync_state.message or "")
    assert sync_state.is_completed() or overlapped, f"{sync_state.message}\n{tail(worker['log'])}"
    job.wait_until_completed(started, "sync run")
    job.check_published_once()


def test_a_webhook_event_resumes_a_deployed_job_once_its_batch_is_complete(deployed_job, receiver):
    job = deployed_job
    job.submit_and_wait_until_suspended()
    url = f"{receiver['url']}/webhooks/labelstudio"
    headers = {WEBHOOK_SECRET_HEADER: receiver["secret"]}
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": job.project, "title": project_title(LabelingJobSpec.model_validate(job.spec))},
        "task": {"id": next(iter(job.tasks.values())), "project": job.project},
        "annotation": {"id": 1},
    }

    # an event while the batch is incomplete resumes nothing
    assert httpx.post(url, json=event, headers=headers, timeout=10, trust_env=False).status_code == 202
    time.sleep(3)
    assert job.state().name == "Suspended"

    job.people_answer()
    job.add_a_task_nobody_waits_for()  # it does not keep the run waiting
    started = time.monotonic()
    for _ in range(3):  # a burst of (duplicate) events, as Label Studio sends one per annotation
        assert httpx.post(url, json=event, headers=headers, timeout=10, trust_env=False).status_code == 202
    job.wait_until_completed(started, "webhook event")
    job.check_published_once()
    assert "Traceback" not in receiver["log"].read_text()


def test_a_person_accepts_the_batch_as_it_stands_from_the_prefect_ui(deployed_job):
    """The waiting run's form in the Prefect UI (its ``ReviewDecision`` RunInput): with
    ``accept_as_is``, it publishes with the answers people gave so far, including those given
    after it suspended; the items nobody answered keep the status they had, nothing waits, and
    Label Studio no longer hands out the batch's unfinished tasks."""
    job = deployed_job
    job.submit_and_wait_until_suspended()
    # the form (and the run's log) say what the run waits for and where people label
    keyset = job.state().state_details.run_input_keyset
    form = job.prefect.read_flow_run_input(job.run.id, keyset["description"])
    waits_for = f"0 of {len(job.tasks)} routed items have their answers; label them at "
    assert waits_for in form and f"/projects/{job.project}/" in form and "Accept as is" in form, form
    logs = job.prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[job.run.id])))
    assert any(log.message.startswith(f"waiting for people: {waits_for}") for log in logs)
    # named after its job in the runs list (its spec came as JSON, run_deployment gave no name)
    assert job.prefect.read_flow_run(job.run.id).name == f"{job.spec['name']} -> {job.label_set}"
    in_order = sorted(job.tasks, key=job.tasks.get)  # the bots work in task order
    first, begun = in_order[:3], in_order[3]  # 3 items with their K answers, one with 1 of K
    for n, bot in enumerate(BOTS):
        job.answers += BotLabeler(f"bot{n + 1}@labelgate.local", **bot).work(
            job.ls, job.project, truth=job.truth, classes=CLASSES, max_per_task=K, limit=4 - n
        )
    assert job.answers == K * len(first) + 1 < K * len(job.tasks)
    time.sleep(3)
    assert job.state().name == "Suspended"  # an incomplete batch resumes nothing by itself
    # the run's page has a progress bar, and the review-sync moves it: exactly the 3 items with
    # their K answers (the check behind it, with progress, does not stop at the first short task)
    store = LabelStore(str(job.worker["store"]))
    bar = job.progress_bar()
    assert bar.key == f"review-{job.label_set}" and str(bar.id) == store.progress_artifact(str(job.run.id))
    assert bar.data == 0 and bar.description.startswith(
        f"**0 of {len(job.tasks)} routed items answered** (when the"
    )
    waiting = [j for j in suspended_labeling_runs() if j.flow_run_id == job.run.id]
    assert resume_complete_runs(job.ls, waiting, store=store, progress=True) == []
    bar = job.progress_bar()
    assert bar.data == percent(3, len(job.tasks)) > 0
    assert bar.description.startswith(f"**3 of {len(job.tasks)} routed items answered** (review-sync, ")

    started = time.monotonic()
    job.prefect.resume_flow_run(job.run.id, run_input={"accept_as_is": True})  # what the UI sends
    job.wait_until_completed(started, "accept as is")
    bar = job.progress_bar()  # the run set the last figure when it went on
    assert bar.description.startswith(
        f"**3 of {len(job.tasks)} routed items answered**, done waiting (accepted as it stood)"
    )
    assert bar.data == percent(3, len(job.tasks))
    assert store.latest_version(job.label_set) == 0
    rows = store.read(job.label_set).set_index("item_id")
    # what people gave so far, the lone answer of the begun item too
    answered = [*first, begun]
    assert set(rows.index[rows["source"] == "human"]) == set(answered)
    assert (rows.loc[answered, "label"] == [job.truth[i] for i in answered]).all()
    events = store.events(label_set=job.label_set)
    assert (events["source"] == "human").sum() == job.answers  # none lost, none counted twice
    assert store.awaited(str(job.run.id)) is None  # it waits for nothing any more
    # and Label Studio no longer hands out its unfinished tasks (retired, nothing deleted): the
    # one begun wants the answer it has, the others none
    overlap = {t["item_id"]: t["overlap"] for t in job.ls.iter_tasks(job.project)}
    assert set(overlap) == set(job.tasks)
    assert {item for item, n in overlap.items() if n == 0} == set(job.tasks) - {*first, begun}
    assert overlap[begun] == 1 and all(overlap[item] == K for item in first)


@pytest.fixture
def receiver(tmp_path, prefect_server, labelstudio_server, worker) -> Iterator[dict]:
    """The labelgate API (``labelgate serve``) on a free loopback port, with a webhook secret and
    the worker's label store (where runs record the items they wait for)."""
    secret = uuid.uuid4().hex
    env = {
        "LABELGATE_STORE": str(worker["store"]),
        "PREFECT_API_URL": prefect_server,
        "LABEL_STUDIO_URL": labelstudio_server.url,
        "LABEL_STUDIO_API_KEY": labelstudio_server.api_key,
        "LABELGATE_WEBHOOK_SECRET": secret,
    }
    log = tmp_path / "api.log"
    with labelgate_api(log, env) as url:
        yield {"url": url, "secret": secret, "log": log}


def test_webhook_receiver_checks_the_shared_secret(receiver, labelstudio_server):
    url = f"{receiver['url']}/webhooks/labelstudio"
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 999_999_999}, "task": {"id": 1}}

    def post(**headers):
        return httpx.post(url, json=event, headers=headers, timeout=10, trust_env=False)

    for headers in ({}, {WEBHOOK_SECRET_HEADER: "wrong"}, {WEBHOOK_SECRET_HEADER: receiver["secret"] + "x"}):
        answer = post(**headers)
        assert answer.status_code == 401
        assert answer.content == b""  # no detail

    answer = post(**{WEBHOOK_SECRET_HEADER: receiver["secret"]})
    assert answer.status_code == 202 and answer.json() == {"queued": True, "project": 999_999_999}
    # the same event twice is fine; an event that is no annotation event is acknowledged, ignored
    assert post(**{WEBHOOK_SECRET_HEADER: receiver["secret"]}).status_code == 202
    other = httpx.post(
        url,
        json={"action": "PROJECT_UPDATED", "project": {"id": 1}},
        headers={WEBHOOK_SECRET_HEADER: receiver["secret"]},
        timeout=10,
        trust_env=False,
    )
    assert other.status_code == 200 and other.json()["queued"] is False
    assert httpx.get(f"{receiver['url']}/health", timeout=5, trust_env=False).json() == {"status": "ok"}

    time.sleep(2)  # let the background checks run against the real servers
    log = receiver["log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    assert receiver["secret"] not in log and labelstudio_server.api_key not in log


def test_a_deployed_job_waits_for_people_in_a_learning_round_and_then_in_the_review_round(
    tmp_path, prefect_server, labelstudio_server, worker
):
    """review.learning: the run suspends for the learning batch, is resumed by the sync, learns
    from the answers, routes the rest, suspends again and publishes once people are done."""
    frame = make_text_frame(40, seed=3)
    truth = dict(zip(frame["id"], frame["label"], strict=True))
    keep = frame.groupby("label").head(3).index  # 9 given labels: nothing certifies at 0.9
    frame.loc[~frame.index.isin(keep), "label"] = None
    label_set = f"deplearn-{uuid.uuid4().hex[:8]}"
    path = write_job(
        tmp_path / "job",
        frame,
        label_set=label_set,
        review={
            "mode": "labelstudio",
            "annotators_per_item": K,
            "audit_share": 0.3,
            "probe": False,
            "learning": {"rounds": 1, "batch_share": 0.1},
        },
        autolabel={"target_accuracy": 0.9, "n_folds": 3},
    )
    spec = load_spec(path)
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as prefect,
        LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as ls,
    ):
        run = run_deployment(
            "labeling-job/labeling-job",
            parameters={"spec": spec.model_dump(mode="json", by_alias=True)},
            work_queue_name=worker["queue"],
            timeout=0,
            as_subflow=False,
        )

        def suspended():
            state = prefect.read_flow_run(run.id).state
            if state.is_final():
                pytest.fail(f"flow run ended {state.name}: {state.message}\n{tail(worker['log'])}")
            return state.is_paused() and state.name == "Suspended"

        def people_answer_and_sync(project: int) -> int:
            awaited = LabelStore(str(worker["store"])).awaited(str(run.id))
            assert awaited == set(ls.task_index(project))  # this round's routed items, learned ones too
            answers = sum(
                BotLabeler(f"bot{n + 1}@labelgate.local", **bot).work(
                    ls, project, truth=truth, classes=CLASSES, max_per_task=K
                )
                for n, bot in enumerate(BOTS)
            )
            assert review_batch_status(ls, spec, project_id=project).complete
            resume_waiting_run(run.id)  # what the review-sync flow does for each complete batch
            return answers

        wait_for("the job to suspend in its learning round", suspended, timeout=150)
        project = find_project(ls, project_title(spec))
        batch = ls.task_index(project)
        assert len(batch) == 12  # 10% of 120: the learning batch only
        answers = people_answer_and_sync(project)

        # suspended again, with the rest routed (not the learning round's suspension still showing)
        wait_for(
            "the job to suspend in its review round",
            lambda: len(ls.task_index(project)) > len(batch) and suspended(),
            timeout=150,
        )
        both = ls.task_index(project)
        assert set(batch.items()) < set(both.items())  # the learning tasks kept, not copied
        answers += people_answer_and_sync(project)

        def completed():
            state = prefect.read_flow_run(run.id).state
            if state.is_final() and not state.is_completed():
                pytest.fail(f"flow run ended {state.name}: {state.message}\n{tail(worker['log'])}")
            return state.is_completed()

        wait_for("the job to complete", completed, timeout=150)
        assert ls.task_index(project) == both  # no task imported twice
        # one progress bar per wait on the run's page, each set to its batch, done
        of_the_run = ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]), type=ArtifactFilterType(any_=["progress"])
        )
        bars = sorted(prefect.read_artifacts(artifact_filter=of_the_run), key=lambda bar: bar.created)
        sizes = [len(batch), len(both)]  # the review round awaits the learned items too
        assert [bar.description.split("**")[1] for bar in bars] == [
            f"{n} of {n} routed items answered" for n in sizes
        ], [bar.description for bar in bars]
        assert all(bar.data == 100 and bar.key == f"review-{label_set}" for bar in bars)

    store = LabelStore(str(worker["store"]))
    lineage = store.lineage(label_set)
    assert lineage["review"]["learning"] == {"rounds": 1, "labeled": 12}
    rows = store.read(label_set).set_index("item_id")
    assert (rows.loc[list(batch), "source"] == "human").all()
    events = store.events(label_set=label_set)
    assert (events["source"] == "human").sum() == answers  # none lost, none counted twice
