"""Gates in the labeling flow: a failing gate stops the publish and the previous version stays
intact; screening, drift and the autolabel quality gate show in the lineage and the report."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import flows.labeling_job
from flows.labeling_job import labeling_job
from labelgate.errors import GateError, RightsError
from labelgate.spec import load_spec
from labelgate.store import LabelStore
from tasks.gate import labels_needed
from tasks.route import route_items
from tests.conftest import make_text_frame, write_job

pytestmark = pytest.mark.flow

CLASSES = ["sports", "food", "tech"]
# 66 labeled items can certify 0.85 (it takes 19 right answers), so some machine labels pass the
# threshold gate and people get an audit sample of them
AUTOLABEL = {"target_accuracy": 0.85, "n_folds": 3}


def _publish_previous(n=90, predicted="sports"):
    """Version 0 of 'texts', written straight to the store (all predicted ``predicted``)."""
    rows = pd.DataFrame(
        {
            "item_id": [f"old{i}" for i in range(n)],
            "label": predicted,
            "status": "accepted",
            "source": "given",
            "quality": 0.9,
            "confidence": 0.99,
            "given_label": predicted,
            "predicted_label": predicted,
            "reason": "given label passed the confident-learning audit",
        }
    )
    LabelStore().publish("texts", rows, lineage={"run_key": "previous", "job": "earlier-job"})
    return LabelStore().read("texts")


def _frame(seed=0, unlabeled=24):
    frame = make_text_frame(30, seed=seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.choice(len(frame), size=unlabeled, replace=False), "label"] = None
    return frame


def _assert_intact(before):
    store = LabelStore()
    assert store.latest_version("texts") == 0
    assert store.read("texts").equals(before)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (
            {"sources": [{"license": "no-ai-training", "source": "partner dump"}]},
            "the licence forbids training",
        ),
        (
            {"rights": {"license": "CC-BY-4.0", "source": "x", "allowed_uses": ["evaluation"]}},
            "do not include",
        ),
        (
            {"rights": {"license": "CC-BY-4.0", "source": "x", "expires": "2020-01-01"}},
            "expired on 2020-01-01",
        ),
    ],
)
def test_rights_that_forbid_training_refuse_the_job_and_keep_the_published_version(tmp_path, extra, said):
    before = _publish_previous()
    spec = load_spec(write_job(tmp_path / "job", _frame(), **extra))
    with pytest.raises(RightsError, match=said):
        labeling_job(spec)
    _assert_intact(before)


def test_blocking_screening_finding_stops_the_job_before_anything_is_published(tmp_path):
    before = _publish_previous()
    frame = _frame()
    frame.loc[7, "text"] += " card 4111 1111 1111 1111"
    validation = {"checks": [{"name": "personal_data", "action": "block"}]}
    spec = load_spec(write_job(tmp_path / "job", frame, validation=validation))
    with pytest.raises(GateError, match=rf"personal_data: 1 item\(s\) \('{frame.loc[7, 'id']}'\)") as info:
        labeling_job(spec)
    assert "4111" not in str(info.value)  # the error names the kind and place, not the number
    _assert_intact(before)


def _fake_review(wrong_share, calls=None):
    """A review round whose people contradict ``wrong_share`` of the audited machine labels (and
    confirm the machine labels a second round sends them). ``calls`` collects each call's routes."""

    def review_round(
        spec,
        dataset,
        rows,
        pred_probs,
        model_version,
        *,
        demoted=frozenset(),
        probe=None,
        probe_demoted=frozenset(),
    ):
        assert not probe  # these jobs' thresholds are certified: nothing to probe
        routed = route_items(rows, audit_share=spec.review.audit_share, seed=0, demoted_ids=demoted)
        routed = routed[routed["route"].isin(["audit_sample", "gate_demoted"])].reset_index(drop=True)
        if calls is not None:
            calls.append(routed["route"].value_counts().to_dict())
        rows = rows.copy().set_index("item_id", drop=False)
        n_wrong = round(wrong_share * int((routed["route"] == "audit_sample").sum()))
        for k, item in enumerate(routed["item_id"]):
            label = rows.at[item, "label"]
            if k < n_wrong:
                label = CLASSES[(CLASSES.index(label) + 1) % 3]
            rows.loc[item, ["label", "status", "source"]] = [label, "accepted", "human"]
        summary = {
            "routed": {"audit_sample": len(routed)},
            "project_id": 1,
            "machine_accuracy": {"checked": len(routed), "correct": len(routed) - n_wrong},
            "quarantine_resolution": {"confirmed": 0, "overturned": 0, "flag_precision": None},
            "annotators": [],
        }
        summary["machine_accuracy"]["estimate"] = summary["machine_accuracy"]["correct"] / max(len(routed), 1)
        summary["machine_accuracy"]["lower_95"] = 0.0
        annotations = pd.DataFrame(
            columns=["status", "annotation_id", "updated_at", "item_id", "label", "annotator"]
        )
        people = SimpleNamespace(routed=routed.assign(route_reason="audit"), annotations=annotations)
        return rows.reset_index(drop=True), summary, people

    return review_round


def _fake_people(monkeypatch, review_round) -> None:
    """The flow with ``review_round`` for people, who answered nothing this run did not send."""
    monkeypatch.setattr(flows.labeling_job, "review_round", review_round)

    def earlier_answers(spec, dataset, screened, rows, people, pred_probs):
        return rows, people, 0

    monkeypatch.setattr(flows.labeling_job, "earlier_answers", earlier_answers)


def test_machine_labels_people_find_wrong_stop_the_publish_when_the_spec_says_stop(tmp_path, monkeypatch):
    before = _publish_previous(predicted="food")
    _fake_people(monkeypatch, _fake_review(0.5))
    spec = load_spec(
        write_job(
            tmp_path / "job",
            _frame(),
            review={"mode": "labelstudio", "audit_share": 1.0},
            autolabel=AUTOLABEL,
            validation={"low_machine_accuracy": "stop", "drift": {"enabled": False}},
        )
    )
    with pytest.raises(GateError, match=r"lower bound 0\.\d+ < target 0\.85.*nothing was published"):
        labeling_job(spec)
    _assert_intact(before)


def test_machine_labels_people_find_wrong_go_to_people_in_a_second_round_by_default(tmp_path, monkeypatch):
    calls = []
    _fake_people(monkeypatch, _fake_review(0.5, calls))
    spec = load_spec(
        write_job(
            tmp_path / "job",
            _frame(seed=1),
            review={"mode": "labelstudio", "audit_share": 0.5},
            autolabel=AUTOLABEL,
        )
    )
    labeling_job(spec)
    store = LabelStore()
    rows = store.read("texts")
    verdict = store.lineage("texts")["machine_labels"]
    # the first round audited machine labels; half were wrong, so the gate sent the others to people
    assert [set(c) for c in calls] == [{"audit_sample"}, {"audit_sample", "gate_demoted"}]
    assert verdict["status"] == "below_target" and verdict["sent_to_people"] == calls[1]["gate_demoted"] > 0
    assert "second review round" in verdict["why"]
    # every machine label people did not see is out of the accepted view; people's answers are in
    machine = rows[rows["source"] == "model"]
    assert not (machine["status"] == "accepted").any()
    assert (rows.loc[rows["source"] == "human", "status"] == "accepted").all()
    assert int((rows["source"] == "human").sum()) == sum(calls[1].values())
    report = (tmp_path / "runs" / "texts" / "v0" / "report.md").read_text()
    assert "below the target: not published as accepted" in report and "second review round" in report


def test_screening_drift_and_unverified_machine_labels_show_in_lineage_and_report(tmp_path):
    _publish_previous(predicted="sports")  # every earlier prediction was 'sports', p=0.99
    frame = _frame(seed=2)
    frame.loc[3, "text"] += " mail me at jane.roe@example.org"
    spec = load_spec(write_job(tmp_path / "job", frame))
    published = labeling_job(spec)
    assert published.version == 1

    store = LabelStore()
    rows = store.read("texts").set_index("item_id")
    pii = frame.loc[3, "id"]
    assert rows.at[pii, "status"] == "quarantined"
    assert rows.at[pii, "reason"].startswith("screening personal_data: personal data: email at characters")
    assert "example.org" not in rows.at[pii, "reason"]
    assert (rows.drop(index=pii)["reason"].str.contains("screening")).sum() == 0

    lineage = store.lineage("texts", 1)
    checks = {c["check"]: c for c in lineage["screening"]}
    assert checks["personal_data"]["found"] == 1 and checks["personal_data"]["items"] == [pii]
    assert checks["exact_duplicates"]["found"] == 0
    drift = lineage["drift"]
    assert drift["compared_with"] == 0 and drift["drifted"] and drift["class"]["drifted"]
    assert drift["audit_share"] == 0.2 and drift["allow_pooled_thresholds"] is False
    assert all(t["basis"] == "class" for t in lineage["thresholds"].values())
    assert set(drift["input_stats"]) == {"text_chars", "text_words"}  # for the next run
    assert lineage["machine_labels"]["status"] == "unverified"
    assert lineage["rights_of_sources"][0]["license"] == "CC0-1.0" and lineage["rights_check"]["ok"]

    report = (tmp_path / "runs" / "texts" / "v1" / "report.md").read_text()
    for heading in ("## Autolabel quality gate", "## Screening", "## Drift against", "## Data rights"):
        assert heading in report
    assert "Machine labels: **unverified**" in report and "**Drift found: class distribution" in report
    assert "| personal_data | quarantine | 1 | quarantined" in report

    # a rerun compares with version 0 again (not with its own version 1): same decisions, no new version
    again = labeling_job(spec)
    assert (again.version, again.created) == (1, False)


def test_labels_a_model_made_cannot_certify_machine_labels(tmp_path):
    """A label set exported by labelgate and fed back in: its machine labels (source 'model') are
    audited like any given label, but the thresholds rest only on the labels people made."""
    frame = _frame(seed=3)
    labeled = frame["label"].notna()
    frame["source"] = np.where(labeled.to_numpy() & (np.arange(len(frame)) % 5 > 0), "model", "human")
    trusting = load_spec(write_job(tmp_path / "plain", frame.drop(columns="source"), autolabel=AUTOLABEL))
    exported = load_spec(write_job(tmp_path / "export", frame, label_set="again", autolabel=AUTOLABEL))

    labeling_job(trusting)
    labeling_job(exported)
    store = LabelStore()
    plain, again = store.lineage("texts"), store.lineage("again")
    machine_made = int((frame["source"] == "model").sum())
    assert plain["threshold_evidence"]["used"] == int(labeled.sum())
    assert again["threshold_evidence"] == {
        "given_labels": int(labeled.sum()),
        "gold_answers": 0,
        "learned_labels": 0,
        "used": int(labeled.sum()) - machine_made,
        "machine_made_left_out": machine_made,
        "label_source_column": "source",
    }
    # with every given label as evidence the thresholds certify the target; with the people-made
    # fifth alone (under the 19 right answers that can certify 0.85 at all) they cannot, and no
    # machine label is accepted
    assert again["threshold_evidence"]["used"] < labels_needed(0.85)
    assert any(np.isfinite(t["threshold"]) for t in plain["thresholds"].values())
    assert not any(np.isfinite(t["threshold"]) for t in again["thresholds"].values())
    rows = store.read("again")
    assert not ((rows["source"] == "model") & (rows["status"] == "accepted")).any()
    report = (tmp_path / "runs" / "again" / "v0" / "report.md").read_text()
    assert f"the {machine_made} that column `source` says a model made were left out" in report
