"""Audit: planted label errors are found, and the audit frame says why."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from labelgate.errors import DataError, SpecError
from tasks.audit import (
    COLUMNS,
    METHODS,
    audit_labels,
    audit_settings,
    find_suspects,
    neighbour_agreement,
)


def _pair_flip(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = y.max() + 1
    noisy = y.copy()
    for c in range(k):
        idx = np.flatnonzero(y == c)
        noisy[rng.choice(idx, round(rate * idx.size), replace=False)] = (c + 1) % k
    return noisy


@pytest.fixture(scope="module")
def noisy_wine():
    data = load_wine()
    y = data.target
    return data.data, y, _pair_flip(y, 0.2, seed=0)


def test_planted_flips_are_found_on_wine(noisy_wine):
    X, y, noisy = noisy_wine
    corrupted = noisy != y
    suspects, probs = audit_labels(X, noisy, kind="tabular", seed=0, n_folds=3)
    flagged = suspects["is_suspect"].to_numpy()
    recall = (flagged & corrupted).sum() / corrupted.sum()
    precision = (flagged & corrupted).sum() / flagged.sum()
    assert recall > 0.85, recall
    assert precision > 0.8, precision
    # What stays accepted is almost all correct.
    assert (noisy[~flagged] == y[~flagged]).mean() > 0.96
    assert probs.shape == (len(y), 3)
    # The reason column: most flagged items' neighbours agree with the predicted class.
    agree = suspects.loc[flagged, "neighbours_agree"]
    assert agree.between(0, 5).all() and agree.median() >= 3
    assert (suspects.loc[~flagged, "neighbours_agree"] == -1).all()


def test_suspects_rank_below_clean_labels(noisy_wine):
    X, y, noisy = noisy_wine
    suspects, _ = audit_labels(X, noisy, kind="tabular", n_folds=3, n_rounds=0, neighbours=0)
    corrupted = noisy != y
    assert suspects.loc[corrupted, "quality"].mean() < suspects.loc[~corrupted, "quality"].mean()
    assert "neighbours_agree" not in suspects


def test_text_audit_finds_flips():
    rng = np.random.default_rng(1)
    vocab = [["goal", "match", "striker", "league"], ["stock", "market", "shares", "bank"]]
    y = rng.integers(0, 2, 300)
    X = np.array([" ".join(rng.choice(vocab[c], 4)) + " today" for c in y], dtype=object)
    noisy = y.copy()
    planted = rng.choice(300, 30, replace=False)
    noisy[planted] = 1 - noisy[planted]
    suspects, _ = audit_labels(X, noisy, kind="text", n_folds=3)
    found = set(np.flatnonzero(suspects["is_suspect"]))
    assert len(found & set(planted)) >= 27
    assert len(found - set(planted)) <= 5


def test_find_suspects_frame_matches_probabilities():
    labels = np.array([0, 1, 1, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    df = find_suspects(labels, probs)
    assert isinstance(df, pd.DataFrame) and tuple(df.columns) == COLUMNS
    assert df["is_suspect"].tolist() == [False, False, True, False]
    assert df["predicted"].tolist() == [0, 1, 0, 2]
    np.testing.assert_allclose(df["p_given"], [0.9, 0.8, 0.2, 0.4])
    np.testing.assert_allclose(df["p_predicted"], [0.9, 0.8, 0.7, 0.4])
    assert df["quality"].between(0, 1).all()
    assert df["quality"].idxmin() == 2


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_on_breast_cancer(method):
    data = load_breast_cancer()
    rng = np.random.default_rng(0)
    probs = np.full((len(data.target), 2), 0.1)
    probs[np.arange(len(probs)), data.target] = 0.9
    labels = data.target.copy()
    flipped = rng.choice(len(labels), 50, replace=False)
    labels[flipped] = 1 - labels[flipped]
    df = find_suspects(labels, probs, method=method)
    assert set(np.flatnonzero(df["is_suspect"])) <= set(flipped)


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(SpecError, match=r"'magic'.*predicted_neq_given"):
        find_suspects(np.array([0, 1]), np.eye(2), method="magic")
    with pytest.raises(DataError, match="same n"):
        find_suspects(np.array([0, 1, 1]), np.eye(2))
    with pytest.raises(DataError, match="sum to 1"):
        find_suspects(np.array([0, 1]), np.array([[0.5, 0.6], [0.1, 0.9]]))
    with pytest.raises(DataError, match="outside"):
        find_suspects(np.array([0, 2]), np.eye(2))


def test_neighbour_agreement_counts_neighbours_with_the_predicted_label():
    X = np.array([[0.0], [0.1], [0.2], [0.3], [10.0], [10.1], [10.2]])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 0, 0, 1, 1, 1])
    agree = neighbour_agreement(X, labels, predicted, kind="tabular", k=2, rows=[3, 5])
    assert agree.tolist() == [-1, -1, -1, 2, -1, 2, -1]


def test_audit_settings_is_json_and_names_the_method():
    settings = audit_settings(kind="text", n_items=1000)
    again = json.loads(json.dumps(settings))
    assert again["method"] == "predicted_neq_given"
    assert again["cleanlab_version"]
    assert again["models"]


def test_the_reaudit_judges_machine_labels_by_models_trained_on_labels_people_made(tmp_path):
    """A model that confused most 'tech' texts with 'sports' labeled them so; trained on its own
    labels too, the re-audit would learn that confusion and flag the right 'tech' labels instead."""
    import pandas as pd

    from labelgate.spec import load_spec
    from tasks.ingest import load_dataset
    from tasks.reaudit import reaudit_rows
    from tests.conftest import make_text_frame, write_job

    frame = make_text_frame(40, seed=3)
    spec = load_spec(write_job(tmp_path, frame))
    dataset = load_dataset(spec.dataset, spec.label_schema)
    rows = pd.DataFrame(
        {
            "item_id": frame["id"],
            "label": frame["label"],
            "status": "accepted",
            "source": "given",
            "reason": "",
        }
    )
    confused = rows.index[rows["label"] == "tech"][:30]
    rows.loc[confused, ["label", "source"]] = ["sports", "model"]
    out, newly = reaudit_rows(rows, dataset, n_folds=3)
    caught = set(newly) & set(rows.loc[confused, "item_id"])
    assert len(caught) >= 0.8 * len(confused), (
        f"{len(caught)} of {len(confused)} confused machine labels caught"
    )
    assert len(set(newly) - caught) <= 3  # and the labels people made stay accepted
    assert (out.loc[confused, "status"] == "quarantined").sum() == len(caught)
