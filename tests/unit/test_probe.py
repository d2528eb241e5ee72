"""Probes (tasks/probe.py): a class no evidence certifies gets a provisional threshold over its
most confident machine labels; people's answers to a sample of them certify it or send them to
people. The flow runs it against a real Label Studio in
``tests/integration/test_review.py::test_a_class_no_evidence_certifies_is_probed_and_its_certified_labels_accepted``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tasks.gate import powered_size, verify_machine_labels
from tasks.probe import PROBE_REGION, probe_sizes, probe_thresholds, verify_probes
from tasks.route import route_items

CLASSES = ["a", "b"]
TARGET = 0.95


def _probs(n: int, seed: int = 0) -> np.ndarray:
    """n items, half predicted 'a' and half 'b', confidences spread over 0.5-1."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, size=n)
    first = np.arange(n) % 2 == 0
    return np.c_[np.where(first, conf, 1 - conf), np.where(first, 1 - conf, conf)]


def _uncertified() -> dict:
    return {c: {"threshold": math.inf, "basis": "class", "support": 0} for c in CLASSES}


def test_only_a_class_nothing_certified_and_big_enough_is_probed_over_its_most_confident_labels():
    size = powered_size(TARGET)
    probs = _probs(2000)
    unlabeled = np.ones(2000, dtype=bool)
    thresholds = _uncertified()
    thresholds["b"] = {"threshold": 0.9, "basis": "class", "support": 400}
    out = probe_thresholds(thresholds, probs, unlabeled, CLASSES, target_accuracy=TARGET)
    assert out["b"] == thresholds["b"]  # certified: left alone
    a = out["a"]
    assert a["basis"] == "probe" and a["probe_size"] == size and a["region"] == PROBE_REGION * size
    mine = probs[probs.argmax(axis=1) == 0].max(axis=1)
    assert (mine >= a["threshold"]).sum() == PROBE_REGION * size  # exactly the region
    assert probe_sizes(out) == {"a": size}
    small = probe_thresholds(_uncertified(), probs[:400], unlabeled[:400], CLASSES, target_accuracy=TARGET)
    assert probe_sizes(small) == {}  # 200 per class: under twice the probe, not probed


def _rows(probs: np.ndarray) -> pd.DataFrame:
    predicted = np.array(CLASSES, dtype=object)[probs.argmax(axis=1)]
    return pd.DataFrame(
        {
            "item_id": [f"i{j}" for j in range(len(probs))],
            "label": predicted,
            "predicted_label": predicted,
            "confidence": probs.max(axis=1),
            "status": "needs_review",
            "source": "model",
            "reason": "r",
            "given_label": None,
        }
    )


def _probed_run(wrong_share: float, *, answer: bool = True):
    probs = _probs(2000, seed=1)
    thresholds = probe_thresholds(
        _uncertified(), probs, np.ones(2000, dtype=bool), CLASSES, target_accuracy=TARGET
    )
    rows = _rows(probs)
    cut = np.array([thresholds[c]["threshold"] for c in CLASSES])[probs.argmax(axis=1)]
    rows.loc[probs.max(axis=1) >= cut, "status"] = "accepted"
    routed = route_items(rows, audit_share=0.0, seed=3, probe=probe_sizes(thresholds))
    probed = routed.loc[routed["route"] == "probe", "item_id"].tolist()
    rng = np.random.default_rng(4)
    truth = rows.set_index("item_id")["label"].copy()
    flip = rng.random(len(truth)) < wrong_share
    truth[flip] = truth[flip].map({"a": "b", "b": "a"})
    after = rows.copy()
    answers = pd.DataFrame(columns=["item_id", "annotator", "label"])
    if answer:
        answers = pd.DataFrame({"item_id": probed, "annotator": "p1", "label": truth[probed].to_numpy()})
        after.loc[after["item_id"].isin(probed), "source"] = "human"
    out, settled, demoted = verify_probes(rows, after, probed, answers, thresholds, target_accuracy=TARGET)
    return rows, routed, out, settled, demoted, probed


def test_the_probe_sample_is_drawn_from_the_provisional_labels_and_the_audit_from_other_classes():
    rows, routed, _, _, _, probed = _probed_run(0.0)
    size = powered_size(TARGET)
    assert len(probed) == 2 * size and routed["route"].eq("probe").sum() == 2 * size
    assert (rows.set_index("item_id").loc[probed, "status"] == "accepted").all()
    # both classes probed: each verified by its probe, no audit sample
    assert not routed["route"].eq("audit_sample").any()
    only_a = route_items(rows, audit_share=0.5, seed=3, probe={"a": size}, minimum_audit=10)
    audit = set(only_a.loc[only_a["route"] == "audit_sample", "item_id"])
    picked = set(only_a.loc[only_a["route"] == "probe", "item_id"])
    classes = rows.set_index("item_id")["predicted_label"]
    assert audit and set(classes[list(audit)]) == {"b"} and set(classes[list(picked)]) == {"a"}


def test_the_gate_leaves_probed_classes_to_their_probe():
    rows = _probed_run(0.0)[0]  # as decided: the provisional machine labels of both classes
    after = rows.copy()
    gated, verdict = verify_machine_labels(
        rows,
        after,
        set(),
        target_accuracy=TARGET,
        answers=pd.DataFrame(columns=["item_id", "annotator", "label"]),
        probed=["a", "b"],
    )
    assert verdict["status"] == "unverified" and verdict["probed_classes"] == ["a", "b"]
    assert "verified by their probes" in verdict["why"]
    assert sorted(gated["item_id"]) == sorted(after["item_id"])  # returned unchanged


def test_a_right_probe_certifies_its_class_and_keeps_the_provisional_labels():
    _, _, out, settled, demoted, _ = _probed_run(0.0)
    for c in CLASSES:
        assert settled[c]["basis"] == "probe" and settled[c]["probe_correct"] == settled[c]["probe_checked"]
        assert settled[c]["accuracy_lower"] >= TARGET and math.isfinite(settled[c]["threshold"])
    kept = out[(out["source"] == "model") & (out["status"] == "accepted")]
    assert len(kept) > 500  # the region less the probe, less the few under the certified threshold
    assert len(demoted) < 100


def test_a_probe_people_contradict_certifies_nothing_and_sends_every_provisional_label_to_people():
    rows, _, out, settled, demoted, probed = _probed_run(0.2)
    assert all(not math.isfinite(settled[c]["threshold"]) for c in CLASSES)
    assert not ((out["source"] == "model") & (out["status"] == "accepted")).any()
    provisional = (rows["status"] == "accepted") & ~rows["item_id"].isin(probed)
    assert set(demoted) == set(rows.loc[provisional, "item_id"])
    assert sum(settled[c]["probe_demoted"] for c in CLASSES) == len(demoted)
    assert out.set_index("item_id").loc[demoted[0], "reason"].endswith("certified nothing at 95%")
    # the second round routes from the rows as decided: the same probe, the rest as probe_demoted
    second = route_items(
        rows, audit_share=0, seed=3, probe=probe_sizes(settled), probe_demoted_ids=set(demoted)
    )
    by_route = second.groupby("route")["item_id"].apply(set)
    assert by_route["probe"] == set(probed) and by_route["probe_demoted"] == set(demoted)


def test_an_unanswered_probe_certifies_nothing():
    _, _, out, settled, demoted, _ = _probed_run(0.0, answer=False)
    assert all(
        settled[c]["probe_checked"] == 0 and not math.isfinite(settled[c]["threshold"]) for c in CLASSES
    )
    assert not ((out["source"] == "model") & (out["status"] == "accepted")).any() and demoted
