"""Jobs through the HTTP API, end to end on real servers.

Real parts: the Prefect server of ``tests/integration/conftest.py``; ``deploy/worker.sh``, which
applies ``deploy/prefect.yaml`` and starts a process worker on a queue of this module's; and the
API under ``labelgate serve``. A client submits a job with httpx and polls it until the label
set's version appears, then downloads that version.
"""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from labelgate.bots import BotLabeler
from labelgate.labelstudio import LabelStudio
from tests.conftest import make_text_frame, write_job
from tests.flow.test_labeling_job import _noisy_frame
from tests.integration.stack import labelgate_api, process_worker, tail, wait_for

pytestmark = pytest.mark.integration

SUBMIT, READ = uuid.uuid4().hex, uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prefect_server, labelstudio_server) -> Iterator[dict]:
    """A worker and the API sharing one store and Label Studio; jobs may read files below ``data``."""
    folder = tmp_path_factory.mktemp("api-jobs")
    env = {
        "PREFECT_API_URL": prefect_server,
        "LABEL_STUDIO_URL": labelstudio_server.url,
        "LABEL_STUDIO_API_KEY": labelstudio_server.api_key,
        "LABELGATE_STORE": str(folder / "store"),
        "LABELGATE_RUNS_DIR": str(folder / "runs"),
    }
    with process_worker(folder, env, prefect_server) as worker:
        api_env = {
            **env,
            "LABELGATE_WORK_QUEUE": worker["queue"],
            "LABELGATE_DATA_ROOTS": json.dumps([str(folder / "data")]),
            "LABELGATE_API_TOKENS": json.dumps({SUBMIT: ["submit", "read"], READ: ["read"]}),
        }
        with labelgate_api(folder / "api.log", api_env) as url:
            yield {
                "url": url,
                "data": folder / "data",
                "worker": worker,
                "api_log": folder / "api.log",
                "labelstudio": labelstudio_server.url,
            }


def _client(stack: dict, token: str = SUBMIT) -> httpx.Client:
    return httpx.Client(
        base_url=stack["url"], headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
    )


def _spec(stack: dict, label_set: str, *, seed: int = 3, frame=None, **over) -> dict:
    """A small text job; its data file sits below the API's data root, named relative to it."""
    folder = stack["data"] / label_set
    write_job(folder, make_text_frame(15, seed=seed) if frame is None else frame, label_set=label_set, **over)
    spec = yaml.safe_load((folder / "job.yaml").read_text())
    spec["dataset"]["path"] = f"{label_set}/data.csv"
    return spec


def _final(client: httpx.Client, job_id: str, stack: dict, *, timeout: float = 240) -> dict:
    def done():
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

    return wait_for(f"job {job_id} to finish\n{tail(stack['worker']['log'])}", done, timeout=timeout, every=2)


def test_a_job_submitted_over_http_ends_in_a_label_set_version(stack):
    label_set = f"api-{uuid.uuid4().hex[:8]}"
    spec = _spec(stack, label_set)
    key = {"Idempotency-Key": f"test-{uuid.uuid4().hex}"}
    with _client(stack) as client:
        first = client.post("/jobs", json=spec, headers=key)
        assert first.status_code == 202, first.text
        job = first.json()
        assert first.headers["location"] == job["links"]["self"]
        assert job["label_set"] == label_set and job["job"] == "text-job"
        assert job["links"]["prefect_ui"].endswith(f"/runs/flow-run/{job['id']}")

        # the same key again: the first job, and no second run
        again = client.post("/jobs", json=spec, headers=key)
        assert again.status_code == 200 and again.json()["id"] == job["id"]
        assert again.headers["idempotent-replayed"] == "true"
        other = dict(spec, name="another-job")
        assert client.post("/jobs", json=other, headers=key).status_code == 409

        final = _final(client, job["id"], stack)
        assert final["state"] == "Completed", f"{final['message']}\n{tail(stack['worker']['log'])}"
        assert final["label_set_version"] == 0
        assert sum(final["counts"].values()) == 45
        assert final["stage"] == "report"

        listed = client.get("/jobs", params={"label_set": label_set}).json()
        assert [j["id"] for j in listed["items"]] == [job["id"]]  # one run, not two

        download = client.get(final["links"]["label_set"].replace(stack["url"], ""))
        assert download.status_code == 200
        rows = pd.read_csv(io.BytesIO(download.content))
        assert len(rows) == 45 and set(rows["status"]) <= {"accepted", "quarantined", "needs_review"}
        versions = client.get(f"/label-sets/{label_set}/versions").json()
        assert versions[0]["lineage"]["flow_run_id"] == job["id"]


def test_jobs_are_listed_by_state_and_a_read_token_cannot_submit(stack):
    with _client(stack, READ) as reader:
        assert reader.post("/jobs", json=_spec(stack, "ro-set")).status_code == 403
        page = reader.get("/jobs", params={"state": "COMPLETED", "limit": 1})
        assert page.status_code == 200
        assert all(j["state_type"] == "COMPLETED" for j in page.json()["items"])
        if page.json()["items"]:  # a full page links the next one, with the same filter
            following = httpx.URL(page.json()["next"])
            assert following.params.get_list("state") == ["COMPLETED"]
            assert following.params["offset"] == "1"


def test_a_job_outside_the_data_roots_is_refused_before_any_run(stack):
    spec = _spec(stack, "escape-set")
    spec["dataset"]["path"] = "../../../../etc/passwd"
    with _client(stack) as client:
        answer = client.post("/jobs", json=spec)
        assert answer.status_code == 400
        assert "dataset.path" in answer.json()["detail"]
        assert client.get("/jobs", params={"label_set": "escape-set"}).json()["items"] == []


def test_a_cancelled_job_publishes_nothing(stack):
    label_set = f"cancel-{uuid.uuid4().hex[:8]}"
    with _client(stack) as client:
        job = client.post("/jobs", json=_spec(stack, label_set)).json()
        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["state_type"] in {"CANCELLING", "CANCELLED"}
        final = _final(client, job["id"], stack, timeout=120)
        assert final["state_type"] == "CANCELLED"
        assert final["label_set_version"] is None
        assert client.post(f"/jobs/{job['id']}/cancel").status_code == 409
        assert client.get(f"/label-sets/{label_set}/versions").status_code == 404


def test_the_review_sync_schedule_creates_its_runs(stack, prefect_server):
    """The deployment applied by deploy/worker.sh has a schedule, and the server's scheduler
    turns it into scheduled runs without anyone asking."""

    def scheduled_runs():
        with temporary_settings(updates={PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as c:
            return c.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["review-sync"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )

    def upcoming():
        now = datetime.now(UTC)
        return [r for r in scheduled_runs() if r.expected_start_time > now]

    runs = wait_for("scheduled review-sync runs", upcoming, timeout=120, every=3)
    starts = sorted(r.expected_start_time for r in runs)
    assert len(runs) >= 2
    assert all(r.auto_scheduled for r in runs)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(abs(gap / 120 - round(gap / 120)) < 0.01 and gap > 0 for gap in gaps), gaps  # every 2 min


def test_the_nightly_reaudit_is_deployed_and_runs_on_the_worker(stack, prefect_server):
    label_set = f"night-{uuid.uuid4().hex[:8]}"
    with _client(stack) as client:
        frame, flipped, _ = _noisy_frame(seed=4)  # a job without the audit lets the planted errors in
        job = client.post("/jobs", json=_spec(stack, label_set, frame=frame, audit={"enabled": False})).json()
        assert _final(client, job["id"], stack)["state"] == "Completed"
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as c:
        deployment = c.read_deployment_by_name("reaudit/reaudit")
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")
        run = run_deployment(
            "reaudit/reaudit",
            parameters={"label_sets": [label_set]},
            work_queue_name=stack["worker"]["queue"],
            timeout=240,
            as_subflow=False,
        )
        assert run.state.is_completed(), f"{run.state.message}\n{tail(stack['worker']['log'])}"
    with _client(stack) as client:
        versions = client.get(f"/label-sets/{label_set}/versions").json()
    assert [v["version"] for v in versions] == [1, 0]
    assert versions[0]["lineage"]["job"] == "reaudit"
    newly = set(versions[0]["lineage"]["reaudit"]["item_ids"])
    assert len(newly & flipped) >= 0.8 * len(flipped)


def test_a_job_waiting_for_people_shows_its_label_studio_project_and_can_be_cancelled(
    stack, labelstudio_server
):
    label_set = f"wait-{uuid.uuid4().hex[:8]}"
    frame, _, _ = _noisy_frame(seed=5)  # unlabeled and suspect items: some must go to people
    spec = _spec(stack, label_set, frame=frame, review={"mode": "labelstudio", "audit_share": 0.2})
    with _client(stack) as client:
        job = client.post("/jobs", json=spec).json()

        def waiting():
            answer = client.get(f"/jobs/{job['id']}").json()
            if answer["state_type"] in {"FAILED", "CRASHED", "COMPLETED"}:
                pytest.fail(
                    f"job ended {answer['state']}: {answer['message']}\n{tail(stack['worker']['log'])}"
                )
            return answer if answer["state"] == "Suspended" else None

        suspended = wait_for("the job to wait for people", waiting, timeout=240, every=2)
        assert suspended["stage"] == "waiting for review"
        project = suspended["links"]["labelstudio_project"]
        assert project and project.startswith(f"{stack['labelstudio']}/projects/")
        # how far people got, counted when asked: none yet, then the tasks one person answered
        project_id = int(project.rsplit("/", 1)[-1])
        with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as ls:
            tasks = ls.task_index(project_id)
            assert suspended["review"] == {"items": len(tasks), "answered": 0}
            classes = spec["schema"]["classes"]
            truth = dict.fromkeys(tasks, classes[0])
            bot = BotLabeler("api-reader@labelgate.local", accuracy=1.0)
            assert bot.work(ls, project_id, truth=truth, classes=classes, max_per_task=1, limit=3) == 3
        k = spec["review"].get("annotators_per_item", 1)
        answered = 3 if k == 1 else 0  # a task has its answers once k people gave them
        assert client.get(f"/jobs/{job['id']}").json()["review"] == {
            "items": len(tasks),
            "answered": answered,
        }

        cancelled = client.post(f"/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 202
        assert cancelled.json()["state"] == "Cancelled"  # no process to stop: at once
        assert client.get(f"/label-sets/{label_set}/versions").status_code == 404
