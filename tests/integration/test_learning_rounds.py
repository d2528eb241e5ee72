"""Learning rounds (``review.learning``, tasks/learning.py) in a real Label Studio, with bot
labelers (real Label Studio users), driven through the `labelgate` command against a real Prefect
server."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from labelgate.labelstudio import LabelStudio
from labelgate.store import LabelStore
from tests.conftest import make_text_frame, write_job
from tests.integration.test_review import BOTS, _env, _people_answer, _published, _run, _waiting_project

pytestmark = pytest.mark.integration


def _job(folder, *, simulate: bool, rounds: int, target: float = 0.9, **learning):
    """210 texts, 5 given labels per class: too few to certify a threshold at 0.9 (15 right of 15
    has a 95% lower bound of 0.82), so without learning every machine label would go to people
    (the probe is off)."""
    frame = make_text_frame(70, seed=11)
    truth = frame[["id", "label"]].rename(columns={"label": "true_label"})
    keep = frame.groupby("label").head(5).index
    frame.loc[~frame.index.isin(keep), "label"] = None
    folder.mkdir(parents=True, exist_ok=True)
    truth.to_csv(folder / "truth.csv", index=False)
    review = {
        "mode": "labelstudio",
        "annotators_per_item": 1,
        "max_annotators_per_item": 3,
        "audit_share": 0.1,
        "probe": False,
        "learning": {"rounds": rounds, "batch_share": 0.1, "stop_share": 0.99, **learning},
    }
    if simulate:
        review["simulate"] = {"truth_path": "truth.csv", "labelers": BOTS}
    label_set = f"learn-{uuid.uuid4().hex[:8]}"
    autolabel = {"target_accuracy": target, "n_folds": 3}
    return write_job(folder, frame, label_set=label_set, review=review, autolabel=autolabel), label_set, truth


def test_people_teach_the_model_in_learning_rounds_and_their_labels_are_published_as_theirs(
    tmp_path, prefect_server, labelstudio_server
):
    spec, label_set, truth = _job(tmp_path / "job", simulate=True, rounds=3)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    store, rows, lineage = _published(spec, label_set, env, tmp_path)
    review, evidence = lineage["review"], lineage["threshold_evidence"]
    learning = review["learning"]
    # at least one round ran: 21 items (10% of 210) each, under the thresholds
    assert 1 <= learning["rounds"] <= 3 and learning["labeled"] == 21 * learning["rounds"]
    assert review["routed"]["learning"] == learning["labeled"] == evidence["learned_labels"]
    assert evidence["used"] == 15 + learning["labeled"]
    # their labels taught the model: thresholds certify, and machine labels are accepted
    assert any(np.isfinite(t["threshold"]) for t in lineage["thresholds"].values())
    machine = rows[(rows["source"] == "model") & (rows["status"] == "accepted")]
    assert len(machine) >= 100
    right = machine["label"] == truth.set_index("id").loc[machine.index, "true_label"]
    assert right.mean() >= 0.9
    # the learned items are people's labels in the label set, with their annotators
    learned = rows[rows["reason"].str.contains("learning round", na=False)]
    assert len(learned) == learning["labeled"] and (learned["source"] == "human").all()
    events = store.events(label_set=label_set)
    people = events[(events["source"] == "human") & events["item_id"].isin(learned.index)]
    assert set(people["item_id"]) == set(learned.index)
    assert set(people["actor"]) <= {f"bot{i}@labelgate.local" for i in (1, 2, 3)}
    # each routed item of every round was imported once
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        assert len(client.task_index(review["project_id"])) == sum(review["routed"].values())
    report = (tmp_path / "runs" / label_set / "v0" / "report.md").read_text()
    assert f"Learning rounds: {learning['rounds']}." in report


def test_a_job_stopped_in_a_learning_round_resumes_without_duplicates_or_losses(
    tmp_path, prefect_server, labelstudio_server
):
    spec, label_set, truth = _job(tmp_path / "job", simulate=False, rounds=1)
    env = _env(tmp_path, prefect_server, labelstudio_server)
    store = LabelStore(str(tmp_path / "store"))

    first = _run(spec, env, tmp_path)
    assert first.returncode == 1 and "waiting for people" in first.stderr, first.stderr[-3000:]
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = _waiting_project(first)
        batch = client.task_index(project)
        assert len(batch) == 21  # the learning batch, and nothing else yet

        again = _run(spec, env, tmp_path)  # nobody answered: same batch, no second copy
        assert again.returncode == 1 and client.task_index(project) == batch

        answers = _people_answer(client, project, truth)
        second = _run(spec, env, tmp_path)  # learned; the final routing waits for people
        assert second.returncode == 1 and "waiting for people" in second.stderr, second.stderr[-3000:]
        assert store.latest_version(label_set) is None  # nothing half-done is published
        both = client.task_index(project)
        assert set(batch.items()) < set(both.items())  # the learning tasks kept, not copied
        answers += _people_answer(client, project, truth)

        third = _run(spec, env, tmp_path)
        assert third.returncode == 0, third.stderr[-3000:]
        assert client.task_index(project) == both  # no task imported twice

    lineage = store.lineage(label_set)
    assert lineage["review"]["learning"] == {"rounds": 1, "labeled": 21}
    events = store.events(label_set=label_set)
    assert (events["source"] == "human").sum() == answers  # no annotation lost or counted twice


def test_a_rerun_after_people_edit_a_learning_round_asks_for_the_same_next_batch(
    tmp_path, prefect_server, labelstudio_server
):
    """People change their round-1 answers while the run waits in round 2. The rerun reads the
    edits, so the model and its thresholds change (here: round 1's answers certify a threshold for
    one class, the edited ones none, so other items are under the thresholds), but round 2 asks for
    the items it first drew (kept in the label store): no task is added and none is left behind.
    A new draw added 32 tasks here."""
    spec, label_set, truth = _job(
        tmp_path / "job", simulate=False, rounds=2, target=0.85, batch_share=0.2, stop_share=1.0
    )
    env = _env(tmp_path, prefect_server, labelstudio_server)

    first = _run(spec, env, tmp_path)
    assert first.returncode == 1 and "waiting for people" in first.stderr, first.stderr[-3000:]
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key) as client:
        project = _waiting_project(first)
        round_one = client.task_index(project)
        _people_answer(client, project, truth)
        second = _run(spec, env, tmp_path)
        assert second.returncode == 1 and "waiting for people" in second.stderr, second.stderr[-3000:]
        both = client.task_index(project)
        assert len(both) == 2 * len(round_one)  # round 2's batch, 21 more

        shift = {"sports": "food", "food": "tech", "tech": "sports"}
        answers = client.fetch_annotations(project, settle=0, classes=list(shift))
        edits = answers[answers["item_id"].isin(set(round_one))]
        for annotation_id, label in zip(edits["annotation_id"], edits["label"], strict=True):
            choice = {"choices": [shift[label]]}
            result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": choice}]
            client._json("PATCH", f"/api/annotations/{int(annotation_id)}/", json={"result": result})

        third = _run(spec, env, tmp_path)  # learns the edited answers, waits in round 2 again
        assert third.returncode == 1 and "waiting for people" in third.stderr, third.stderr[-3000:]
        assert client.task_index(project) == both
    assert LabelStore(str(tmp_path / "store")).latest_version(label_set) is None
