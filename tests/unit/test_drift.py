"""Drift against the previous version: planted shifts are found, identical data is not flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validators.drift import (
    bin_counts,
    bin_edges,
    class_drift,
    compare_runs,
    input_columns,
    input_statistics,
    psi,
    summarise,
)

CLASSES = ["a", "b", "c"]


def test_psi_is_zero_for_equal_shares_and_known_for_a_planted_shift():
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0)
    # shares (.5, .5) -> (.9, .1): (.4 ln 1.8) + (-.4 ln .2)
    assert psi([50, 50], [90, 10]) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5))
    assert np.isfinite(psi([100, 0], [0, 100]))  # empty bins are floored, never infinite


def test_decile_bins_and_counts():
    values = np.arange(100.0)
    edges = bin_edges(values)
    assert len(edges) == 9
    assert bin_counts(values, edges).tolist() == [10] * 10
    # one distinct value: the decile edges merge, and the value gets a bin of its own
    assert bin_edges(np.zeros(50)).tolist() == [np.nextafter(0.0, -1), 0.0]
    assert bin_counts(np.zeros(50), bin_edges(np.zeros(50))).tolist() == [0, 50, 0]


def test_class_drift_finds_a_shift_and_not_a_resample():
    rng = np.random.default_rng(0)
    before = rng.choice(CLASSES, size=600, p=[0.4, 0.4, 0.2])
    same = rng.choice(CLASSES, size=600, p=[0.4, 0.4, 0.2])
    shifted = rng.choice(CLASSES, size=600, p=[0.2, 0.4, 0.4])
    assert not class_drift(before, same, classes=CLASSES)["drifted"]
    result = class_drift(before, shifted, classes=CLASSES)
    assert result["drifted"] and result["p_value"] < 1e-6
    assert result["current_share"]["c"] == pytest.approx((shifted == "c").mean())


def _previous(n=500, seed=0):
    rng = np.random.default_rng(seed)
    texts = np.array([" ".join(["word"] * int(k)) for k in rng.integers(5, 30, n)], dtype=object)
    rows = pd.DataFrame(
        {
            "predicted_label": rng.choice(CLASSES, size=n),
            "confidence": rng.beta(8, 2, n),
        }
    )
    return rows, texts


def test_compare_runs_flags_only_the_planted_kind_of_drift():
    rows, texts = _previous()
    stats = input_statistics(texts, kind="text")
    rng = np.random.default_rng(1)
    n = len(rows)

    def run(predicted=None, confidence=None, new_texts=None):
        return compare_runs(
            rows,
            stats,
            predicted=predicted if predicted is not None else rng.choice(CLASSES, size=n),
            confidence=confidence if confidence is not None else rng.beta(8, 2, n),
            inputs=input_columns(new_texts if new_texts is not None else texts, kind="text"),
            classes=CLASSES,
        )

    calm = run()
    assert not calm["drifted"] and calm["reasons"] == []

    by_class = run(predicted=rng.choice(CLASSES, size=n, p=[0.6, 0.2, 0.2]))
    assert by_class["class"]["drifted"] and not by_class["confidence"]["drifted"]
    assert by_class["reasons"][0].startswith("class distribution")

    by_confidence = run(confidence=rng.beta(2, 2, n))
    assert by_confidence["confidence"]["drifted"] and not by_confidence["class"]["drifted"]

    longer = np.array([t + " more words here and there" * 3 for t in texts], dtype=object)
    by_input = run(new_texts=longer)
    assert by_input["inputs"]["drifted"] and by_input["inputs"]["worst"] in ("text_chars", "text_words")
    assert not by_input["class"]["drifted"]


def test_tabular_input_statistics_are_per_feature_and_name_the_worst():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    stats = input_statistics(X, kind="tabular", feature_names=["x", "y", "z"])
    moved = X.copy()
    moved[:, 1] += 1.5
    rows = pd.DataFrame({"predicted_label": ["a"] * 400, "confidence": np.full(400, 0.9)})
    result = compare_runs(
        rows,
        stats,
        predicted=["a"] * 400,
        confidence=np.full(400, 0.9),
        inputs=input_columns(moved, kind="tabular", feature_names=["x", "y", "z"]),
        classes=CLASSES,
    )
    assert result["inputs"]["worst"] == "y" and result["inputs"]["psi"]["x"] < 0.1
    assert result["reasons"] == [f"input y (PSI {result['inputs']['psi']['y']:.3f} > 0.2)"]


def test_older_version_without_input_statistics_skips_that_comparison():
    rows, texts = _previous()
    result = compare_runs(
        rows,
        None,
        predicted=rows["predicted_label"],
        confidence=rows["confidence"].to_numpy(),
        inputs=input_columns(texts, kind="text"),
        classes=CLASSES,
    )
    assert "skipped" in result["inputs"] and not result["drifted"]
    assert summarise(np.arange(10.0))["counts"] == [1] * 10


def _spec(**validation):
    from labelgate.spec import parse_spec
    from tests.unit.test_spec import BASE

    return parse_spec({**BASE, "schema": {"classes": CLASSES}, "validation": validation})


def _dataset(texts, classes=CLASSES):
    from tasks.ingest import Dataset

    n = len(texts)
    return Dataset(
        ids=np.array([f"i{i}" for i in range(n)], dtype=object),
        X=np.asarray(texts, dtype=object),
        given=np.full(n, -1),
        classes=list(classes),
        kind="text",
        fingerprint="f",
        source="s",
    )


def test_drift_stage_widens_the_audit_and_drops_pooled_thresholds_only_when_drifted():
    from tasks.drift import drift_report, review_spec

    rows, texts = _previous()
    spec = _spec()
    dataset = _dataset(texts)
    probs = np.full((len(texts), 3), 0.1)
    probs[:, 0] = 0.8  # every item now predicted 'a'
    first = drift_report(
        spec, dataset, probs, previous_rows=None, previous_lineage=None, previous_version=None
    )
    assert first["skipped"] == "no previous version of this label set" and not first["drifted"]
    assert set(first["input_stats"]) == {"text_chars", "text_words"}
    assert review_spec(spec, first) is spec

    lineage = {"drift": {"input_stats": first["input_stats"]}}
    after = drift_report(
        spec, dataset, probs, previous_rows=rows, previous_lineage=lineage, previous_version=0
    )
    assert after["drifted"] and after["class"]["drifted"] and not after["inputs"]["drifted"]
    assert after["audit_share"] == 0.2 and after["allow_pooled_thresholds"] is False
    assert review_spec(spec, after).review.audit_share == 0.2 and spec.review.audit_share == 0.05

    off = drift_report(
        _spec(drift={"enabled": False}),
        dataset,
        probs,
        previous_rows=rows,
        previous_lineage=lineage,
        previous_version=0,
    )
    assert off["skipped"] == "validation.drift.enabled is false" and not off["drifted"]


def test_a_rerun_compares_with_what_the_first_run_compared_with():
    from labelgate.store import LabelStore
    from tasks.drift import comparison_base

    store = LabelStore()
    rows = pd.DataFrame(
        {
            "item_id": ["x", "y"],
            "label": "a",
            "status": "accepted",
            "source": "given",
            "quality": 0.9,
            "confidence": 0.9,
            "given_label": "a",
            "predicted_label": "a",
            "reason": "r",
        }
    )
    assert comparison_base(store, "set", run_key="mine") == (None, None, None)
    store.publish("set", rows, lineage={"run_key": "earlier"})
    store.publish("set", rows.assign(label="b"), lineage={"run_key": "mine"})
    version, previous, lineage = comparison_base(store, "set", run_key="mine")
    assert version == 0 and lineage["run_key"] == "earlier" and (previous["label"] == "a").all()
    assert comparison_base(store, "set", run_key="someone else")[0] == 1


def test_a_constant_previous_confidence_still_sees_a_move_downwards():
    from validators.drift import bin_counts, bin_edges, psi

    previous = np.full(500, 0.99)
    edges = bin_edges(previous)
    same = psi(bin_counts(previous, edges), bin_counts(np.full(500, 0.99), edges))
    lower = psi(bin_counts(previous, edges), bin_counts(np.full(500, 0.6), edges))
    higher = psi(bin_counts(previous, edges), bin_counts(np.full(500, 0.999), edges))
    assert same == 0 and lower > 0.2 and higher > 0.2
