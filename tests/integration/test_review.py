"""Human review in a real Label Studio, with bot labelers (real Label Studio users), driven
through the `labelgate` command against a real Prefect server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelgate.bots import BotLabeler
from labelgate.labelstudio import LabelStudio
from labelgate.store import LabelStore
from tasks.annotation_sync import sync_annotations
from tests.conftest import make_text_frame, write_job

pytestmark = pytest.mark.integration

LABELGATE = str(Path(sys.executable).parent / "labelgate")
BOTS = [{"accuracy": 0.95, "seed": 1}, {"accuracy": 0.9, "seed": 2}, {"accuracy": 0.85, "seed": 3}]


def _job(folder: Path, *, simulate: bool, machine_wrong: bool = False, target: float = 0.6, k: int = 2):
    """machine_wrong: the truth of the unlabeled items is another class than their text says, so
    the model's machine labels for them are wrong and people (bots) say so."""
    frame = make_text_frame(30, seed=5)
    truth = frame[["id", "label"]].rename(columns={"label": "true_label"})
    rng = np.random.default_rng(5)
    flipped = rng.choice(len(frame), size=9, replace=False)
    swap = {"sports": "food", "food": "tech", "tech": "sports"}
    frame.loc[flipped, "label"] = frame.loc[flipped, "label"].map(swap)
    unlabeled = rng.choice(np.setdiff1d(np.arange(len(frame)), flipped), size=15, replace=False)
    frame.loc[unlabeled, "label"] = None
    if machine_wrong:
        truth.loc[unlabeled, "true_label"] = truth.loc[unlabeled, "true_label"].map(swap)
    folder.mkdir(parents=True, exist_ok=True)
    truth.to_csv(folder / "truth.csv", index=False)
    truth.iloc[:4].rename(columns={"true_label": "label"}).to_csv(folder / "gold.csv", index=False)
    review = {
        "mode": "labelstudio",
        "annotators_per_item": k,
        "max_annotators_per_item": 3,  # a team of three people (or bots)
        "audit_share": 0.3,
        "gold_path": "gold.csv",
    }
    if simulate:
        review["simulate"] = {"truth_path": "truth.csv", "labelers": BOTS}
    label_set = f"rev-{uuid.uuid4().hex[:8]}"
    # the gate scores the model against the given labels (10% flipped here, 75 of them): 0.6 is
    # certifiable by the fixed-sequence test (tasks/gate.py), 0.75 is not
    autolabel = {"target_accuracy": target, "n_folds": 3}
    return write_job(folder, frame, label_set=label_set, review=review, autolabel=autolabel), label_set, truth


def _env(tmp_path, prefect_server, ls):
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=prefect_server,
        LABELGATE_STORE=str(tmp_path / "store"),
        LABELGATE_RUNS_DIR=str(tmp_path / "runs"),
        LABEL_STUDIO_URL=ls.url,
        LABEL_STUDIO_API_KEY=ls.api_key,
        COLUMNS="200",
    )
    return env


def _people_answer(client, project, truth) -> int:
    """People (bots, outside the flow) answer every task three times: bot1 and bot2 each task
    with fewer than two answers, bot3 each with fewer than three. Three, not a third only where
    the first two disagree: two agreeing answers do not settle every item (an unsure label's
    posterior may stay under the target), and with two the job's last run still waited for one.
    Returns how many answers they gave."""
    answers = 0
    for n, bot in enumerate(BOTS):
        answers += BotLabeler(f"bot{n + 1}@labelgate.local", **bot).work(
            client,
            project,
            truth=dict(truth.values),
            classes=["sports", "food", "tech"],
            max_per_task=2 if n < 2 else 3,
        )
    return answers


def _run(spec, env, cwd):
    return subprocess.run(
        [LABELGATE, "run", str(spec)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _waiting_project(result) -> int:
    """The Label Studio project a run that stopped to wait for people names."""
    return int(re.search(r"/projects/(\d+)/", result.stderr.replace("\n", "")).group(1))


def _published(spec, label_set, env, tmp_path):
    """Run the job to the end; return the store, the published rows (by item id) and the lineage."""
    result = _run(spec, env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    store = LabelStore(str(tmp_path / "store"))
    return store, store.read(label_set).set_index("item_id"), store.lineage(label_set)


def test_bots_review_routed_items_and_consensus_is_published(tmp_path, prefect_server, labelstudio_server):
    spec, label_set, truth = _job(tmp_path / "job", simulate=True)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    store, rows, lineage = _published(spec, label_set, env, tmp_path)
    review = lineage["review"]
    routed = sum(review["routed"].values())
    assert review["routed"]["gold"] == 4
    assert (rows["source"] == "human").sum() + (rows["source"] == "gold").sum() == routed
    # consensus of 2-3 bots of 85-95% accuracy beats any single bot on the reviewed items
    reviewed = rows[rows["source"] == "human"]
    right = reviewed["label"] == truth.set_index("id").loc[reviewed.index, "true_label"]
    assert right.mean() >= 0.9
    # two answers per item from bot1 and bot2; bot3 only where they disagreed
    annotators = {a["annotator"] for a in review["annotators"]}
    assert {"bot1@labelgate.local", "bot2@labelgate.local"} <= annotators
    assert annotators <= {f"bot{i}@labelgate.local" for i in (1, 2, 3)}
    assert review["machine_accuracy"]["checked"] > 0 and lineage["machine_accuracy_verified"] is True
    events = store.events(label_set=label_set)
    assert set(events.loc[events["source"] == "human", "actor"]) <= {
        f"bot{i}@labelgate.local" for i in (1, 2, 3)
    }

    # a rerun reuses the project and imports no task twice
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = review["project_id"]
        before = client.task_index(project)
        assert len(before) == routed
        result = _run(spec, env, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert client.task_index(project) == before


def test_answers_on_items_a_later_routing_does_not_send_are_still_published(
    tmp_path, prefect_server, labelstudio_server
):
    """A person's answer is never dropped: after the spec changes so that the rerun routes no
    audit sample, the machine labels people checked in the first run keep people's label, unless
    the item's content changed since people were asked."""
    spec, label_set, _ = _job(tmp_path / "job", simulate=True)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    _, first, first_lineage = _published(spec, label_set, env, tmp_path)
    checked = first.index[first["reason"].str.contains("random audit sample", regex=False)]
    assert len(checked) > 1 and (first.loc[checked, "source"] == "human").all()

    # one of them was asked about as other content (as if the data file changed it since): its
    # answers are about that content, so they are not used
    changed, kept = checked[0], checked[1:]
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        task_id = client.task_index(first_lineage["review"]["project_id"])[changed]
        data = client._json("GET", f"/api/tasks/{task_id}/")["data"]
        client._json("PATCH", f"/api/tasks/{task_id}/", json={"data": {**data, "item_hash": "0" * 16}})

    job = yaml.safe_load(spec.read_text())
    job["review"]["audit_share"] = 0.0
    spec.write_text(yaml.safe_dump(job))
    _, second, lineage = _published(spec, label_set, env, tmp_path)
    assert (second.loc[kept, "source"] == "human").all()
    assert lineage["review"]["routed"].get("audit_sample", 0) == 0
    assert lineage["review"]["routed"]["answered_earlier"] == len(kept)
    assert second.loc[kept, "label"].tolist() == first.loc[kept, "label"].tolist()
    assert second.loc[kept, "reason"].str.contains("answered in an earlier run", regex=False).all()
    assert second.at[changed, "source"] == "model"
    published_machine = ((second["source"] == "model") & (second["status"] == "accepted")).sum()
    assert lineage["machine_labels"]["machine_accepted"] == published_machine
    assert set(first.index[first["source"] == "human"]) - {changed} == set(
        second.index[second["source"] == "human"]
    )

    # an item this run sends to people whose task was made from other content is a clear error
    gold = second.index[second["source"] == "gold"][0]
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        task_id = client.task_index(lineage["review"]["project_id"])[gold]
        data = client._json("GET", f"/api/tasks/{task_id}/")["data"]
        client._json("PATCH", f"/api/tasks/{task_id}/", json={"data": {**data, "item_hash": "0" * 16}})
    store = LabelStore(str(tmp_path / "store"))
    version = store.latest_version(label_set)
    third = _run(spec, env, tmp_path)
    message = " ".join(third.stderr.split())
    assert third.returncode == 1 and "made from other content" in message and repr(gold) in message
    assert store.latest_version(label_set) == version  # nothing published

    # asked to, the run sets the old task aside with its answers and asks people again
    job["review"]["changed_items"] = "ask_again"
    spec.write_text(yaml.safe_dump(job))
    _, fourth, _ = _published(spec, label_set, env, tmp_path)
    assert store.latest_version(label_set) == version + 1
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = lineage["review"]["project_id"]
        old = client._json("GET", f"/api/tasks/{task_id}/")
        new_task = client.task_index(project)[gold]
        assert old["data"]["item_id"] == f"{gold}@{'0' * 16}" and new_task != task_id
        assert old["total_annotations"] > 0  # the answers on the old content are kept
        answers = client.fetch_annotations(project)
        assert (answers["task_id"] == new_task).sum() > 0  # people answered the new content
        # the label store's mirror of the project moved the old answers with their task
        mirror = sync_annotations(client, store, project, classes=job["schema"]["classes"])
        assert (mirror.loc[mirror["task_id"] == task_id, "item_id"] == f"{gold}@{'0' * 16}").all()
        assert (mirror["task_id"] == task_id).sum() == old["total_annotations"]
    assert fourth.at[gold, "source"] == "gold"


def test_job_stopped_while_people_label_resumes_without_duplicates_or_losses(
    tmp_path, prefect_server, labelstudio_server
):
    spec, label_set, truth = _job(tmp_path / "job", simulate=False)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    first = _run(spec, env, tmp_path)
    assert first.returncode == 1
    assert "waiting for people" in first.stderr and "Nothing was published" in first.stderr
    assert "Traceback" not in first.stderr  # an expected wait, not a crash
    store = LabelStore(str(tmp_path / "store"))
    assert store.latest_version(label_set) is None

    # people (bots, outside the flow) label while no process waits; then the job is run again
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = _waiting_project(first)
        tasks_before = client.task_index(project)
        answers = _people_answer(client, project, truth)
        assert answers == 3 * len(tasks_before)
        second = _run(spec, env, tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        assert client.task_index(project) == tasks_before  # no duplicate tasks

    events = store.events(label_set=label_set)
    assert (events["source"] == "human").sum() == answers  # no annotation lost or counted twice
    assert store.latest_version(label_set) == 0


def test_label_studio_down_on_a_rerun_fails_clearly_and_the_next_rerun_loses_nothing(
    tmp_path, prefect_server, labelstudio_server
):
    """People answered while no process waited; then Label Studio is down when the job runs
    again: the run fails after its retries, naming the server (not the token), and publishes
    nothing. Once the server is back, the next run publishes every answer once and makes no
    task twice."""
    spec, label_set, truth = _job(tmp_path / "job", simulate=False)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    first = _run(spec, env, tmp_path)
    assert first.returncode == 1 and "waiting for people" in first.stderr
    project = _waiting_project(first)
    store = LabelStore(str(tmp_path / "store"))
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        tasks_before = client.task_index(project)
        answers = _people_answer(client, project, truth)

        with socket.socket() as sock:  # a port nothing listens on: the server is down
            sock.bind(("127.0.0.1", 0))
            down_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # one retry instead of four (LABELGATE_LABELSTUDIO_RETRIES): the same failure, sooner
        down_env = {**env, "LABEL_STUDIO_URL": down_url, "LABELGATE_LABELSTUDIO_RETRIES": "1"}
        down = _run(spec, down_env, tmp_path)
        said = " ".join((down.stdout + down.stderr).split())
        assert down.returncode == 1, said[-3000:]
        assert "error: Label Studio" in said and f"{down_url}/api/" in said, said[-3000:]
        assert "cannot connect" in said and "after 2 attempts" in said, said[-3000:]
        assert labelstudio_server.api_key not in said
        assert f"Nothing was published: label set {label_set!r} still has no version." in said
        assert store.latest_version(label_set) is None  # nothing half-done is published

        back = _run(spec, env, tmp_path)
        assert back.returncode == 0, back.stderr[-3000:]
        assert client.task_index(project) == tasks_before  # no duplicate tasks
    events = store.events(label_set=label_set)
    assert (events["source"] == "human").sum() == answers  # no annotation lost or counted twice
    assert store.latest_version(label_set) == 0


def test_a_rerun_that_routes_fewer_items_stops_offering_the_others_and_offers_them_again_later(
    tmp_path, prefect_server, labelstudio_server
):
    """The spec changes between runs so that the audit sample is no longer routed: its tasks
    that nobody answered are retired (Label Studio's label stream passes over them), the routed
    ones stay on offer; when a later run routes them again, they are offered again. No task is
    made twice."""
    spec, label_set, _ = _job(tmp_path / "job", simulate=False)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    first = _run(spec, env, tmp_path)
    assert first.returncode == 1 and "waiting for people" in first.stderr
    project = _waiting_project(first)
    job = yaml.safe_load(spec.read_text())

    def overlaps(client) -> dict[str, int]:
        return {t["item_id"]: t["overlap"] for t in client.iter_tasks(project)}

    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        before = overlaps(client)
        assert set(before.values()) == {2}
        job["review"]["audit_share"] = 0.0
        spec.write_text(yaml.safe_dump(job))
        second = _run(spec, env, tmp_path)
        assert second.returncode == 1 and "waiting for people" in second.stderr
        routed = int(re.search(r"of (\d+) routed items", " ".join(second.stderr.split())).group(1))
        after = overlaps(client)
        retired = sorted(item for item, n in after.items() if n == 0)
        assert set(after) == set(before) and len(retired) == len(before) - routed > 0
        index = client.task_index(project)
        reasons = [
            client._json("GET", f"/api/tasks/{index[item]}/")["data"]["route_reason"] for item in retired
        ]
        assert all("audit sample" in reason for reason in reasons), reasons  # exactly what was dropped
        assert client.count_tasks(project, labeled=False) == len(before)  # retired, not answered

        job["review"]["audit_share"] = 0.3
        spec.write_text(yaml.safe_dump(job))
        third = _run(spec, env, tmp_path)
        assert third.returncode == 1 and "waiting for people" in third.stderr
        assert overlaps(client) == before  # offered again, and no task made twice
        assert client.task_index(project).keys() == before.keys()
    assert LabelStore(str(tmp_path / "store")).latest_version(label_set) is None  # nothing half-done


def test_machine_labels_people_reject_go_to_people_in_a_second_round_of_the_same_run(
    tmp_path, prefect_server, labelstudio_server
):
    spec, label_set, truth = _job(tmp_path / "job", simulate=True, machine_wrong=True)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    _, rows, lineage = _published(spec, label_set, env, tmp_path)
    verdict, review = lineage["machine_labels"], lineage["review"]
    # the bots contradicted the audited machine labels: the gate sent the rest to them too
    assert verdict["status"] == "below_target" and "second review round" in verdict["why"]
    assert review["routed"]["audit_sample"] > 0
    assert review["routed"]["gate_demoted"] == verdict["sent_to_people"] > 0
    assert not ((rows["source"] == "model") & (rows["status"] == "accepted")).any()
    # what people said replaced the wrong machine labels
    unlabeled = rows[rows["given_label"].isna() & (rows["source"] == "human")]
    right = unlabeled["label"] == truth.set_index("id").loc[unlabeled.index, "true_label"]
    assert len(unlabeled) >= 10 and right.mean() >= 0.8
    # every routed item of both rounds was answered once in the label set, and imported once
    routed = sum(review["routed"].values())
    assert (rows["source"] == "human").sum() + (rows["source"] == "gold").sum() == routed
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        assert len(client.task_index(review["project_id"])) == routed


def test_a_second_round_for_demoted_machine_labels_waits_for_people_and_loses_nothing_on_reruns(
    tmp_path, prefect_server, labelstudio_server
):
    spec, label_set, truth = _job(tmp_path / "job", simulate=False, machine_wrong=True)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    store = LabelStore(str(tmp_path / "store"))

    first = _run(spec, env, tmp_path)
    assert first.returncode == 1 and "waiting for people" in first.stderr, first.stderr[-3000:]
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = _waiting_project(first)
        round_one = client.task_index(project)
        answers = _people_answer(client, project, truth)

        # the answers contradict the audited machine labels: the rerun sends the rest to people
        second = _run(spec, env, tmp_path)
        assert second.returncode == 1 and "waiting for people" in second.stderr, second.stderr[-3000:]
        assert store.latest_version(label_set) is None  # nothing half-done is published
        both_rounds = client.task_index(project)
        assert set(round_one.items()) < set(both_rounds.items())  # the first round's tasks kept
        answers += _people_answer(client, project, truth)

        third = _run(spec, env, tmp_path)
        assert third.returncode == 0, third.stderr[-3000:]
        assert client.task_index(project) == both_rounds  # no task imported twice
        assert len(client.list_tasks(project)) == len(both_rounds)

    verdict = store.lineage(label_set)["machine_labels"]
    assert verdict["sent_to_people"] == len(both_rounds) - len(round_one)
    events = store.events(label_set=label_set)
    assert (events["source"] == "human").sum() == answers  # no annotation lost or counted twice


def test_one_answer_against_a_machine_label_gets_a_second_opinion_before_it_counts(
    tmp_path, prefect_server, labelstudio_server
):
    """One annotator per item; on the audit sample, an answer that contradicts the machine label
    is a model error only once a second person says so too (adjudication)."""
    spec, label_set, _ = _job(tmp_path / "job", simulate=True, machine_wrong=True, k=1)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    store, rows, lineage = _published(spec, label_set, env, tmp_path)
    review = lineage["review"]
    events = store.events(label_set=label_set)
    answers = events[events["source"] == "human"].groupby("item_id").size()
    # the machine labels are wrong (the truth was swapped), so the bots contradict every audited
    # one; each audited machine label was then asked about a second time
    checked = review["machine_accuracy"]["checked"]
    assert review["routed"]["audit_sample"] == checked > 0 and review["machine_accuracy"]["correct"] <= 1
    machine_items = rows.index[rows["given_label"].isna()]
    assert (answers.reindex(machine_items).fillna(0) >= 2).sum() >= checked
    assert answers.max() <= 3  # annotators_per_item + 2, and there are three bots


def test_a_class_no_evidence_certifies_is_probed_and_its_certified_labels_accepted(
    tmp_path, prefect_server, labelstudio_server
):
    """The given labels were made by a model, so nothing certifies a threshold (tasks/gate.py):
    without a probe, every machine label would go to people. With it, people (bots) check 22 of
    each class's most confident machine labels (powered_size(0.7)), and the others are accepted
    on their answers (tasks/probe.py)."""
    frame = make_text_frame(70, seed=7)
    truth = frame[["id", "label"]].rename(columns={"label": "true_label"})
    rng = np.random.default_rng(7)
    unlabeled = rng.choice(len(frame), size=165, replace=False)
    frame.loc[unlabeled, "label"] = None
    frame["source"] = np.where(frame["label"].isna(), None, "model")
    folder = tmp_path / "job"
    folder.mkdir()
    truth.to_csv(folder / "truth.csv", index=False)
    label_set = f"probe-{uuid.uuid4().hex[:8]}"
    spec = write_job(
        folder,
        frame,
        label_set=label_set,
        dataset={
            "path": "data.csv",
            "id_column": "id",
            "text_column": "text",
            "label_column": "label",
            "label_source_column": "source",
        },
        autolabel={"target_accuracy": 0.7, "n_folds": 3},
        review={
            "mode": "labelstudio",
            "annotators_per_item": 1,
            "max_annotators_per_item": 3,
            "audit_share": 0.2,
            "simulate": {"truth_path": "truth.csv", "labelers": BOTS},
        },
    )
    env = _env(tmp_path, prefect_server, labelstudio_server)
    _, rows, lineage = _published(spec, label_set, env, tmp_path)
    thresholds, review = lineage["thresholds"], lineage["review"]
    probed = {c: t for c, t in thresholds.items() if t["basis"] == "probe"}
    assert len(probed) == 3 and review["routed"]["probe"] == 3 * 22
    assert all(t["probe_checked"] == 22 and t["accuracy_lower"] >= 0.7 for t in probed.values())
    # provisional labels under the certified threshold went to people, in the second round; every
    # class was probed, so each machine label was verified by its probe and there is no audit
    assert sum(t["probe_demoted"] for t in probed.values()) == review["routed"].get("probe_demoted", 0)
    assert "audit_sample" not in review["routed"] and lineage["machine_accuracy_verified"]
    assert lineage["machine_labels"]["probed_classes"] == sorted(probed)
    machine = rows[(rows["source"] == "model") & (rows["status"] == "accepted")]
    assert len(machine) >= 30  # accepted on the probes' answers, never shown to anyone
    right = machine["label"] == truth.set_index("id").loc[machine.index, "true_label"]
    assert right.mean() >= 0.9
    assert "provisional" in machine["reason"].iloc[0]
    assert not rows.loc[rows["given_label"].isna(), "label"].isna().any()
    report = (tmp_path / "runs" / label_set / "v0" / "report.md").read_text()
    assert (
        report.count("- probe of ") == 3
        and "most confident machine labels were accepted provisionally" in report
    )
