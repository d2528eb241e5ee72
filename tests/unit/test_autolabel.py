"""Autolabel: out-of-sample probabilities, fitted models, and their skops round trip."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine

from labelgate.errors import DataError, LabelgateError, SpecError
from tasks.autolabel import (
    KINDS,
    fit_model,
    make_estimators,
    out_of_sample_proba,
    predict_proba_unlabeled,
)
from tasks.model_files import load_model, save_model


@pytest.fixture(scope="module")
def wine():
    data = load_wine()
    return data.data, data.target


def _texts(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vocab = [
        ["goal", "match", "striker", "league", "coach", "score"],
        ["stock", "market", "shares", "profit", "bank", "rates"],
        ["vote", "election", "senate", "party", "minister", "law"],
    ]
    filler = ["the", "a", "today", "new", "after", "report", "says"]
    y = rng.integers(0, 3, size=n)
    X = np.array(
        [" ".join(rng.choice(vocab[c], 3).tolist() + rng.choice(filler, 3).tolist()) for c in y],
        dtype=object,
    )
    return X, y


@pytest.mark.parametrize("kind", KINDS)
def test_every_estimator_predicts_probabilities(kind):
    for n in (500, 100_000, 1_000_000):
        estimators = make_estimators(kind, seed=0, n_items=n)
        assert estimators, f"no estimators for {kind} at n={n}"
        assert all(hasattr(e, "predict_proba") for e in estimators.values())


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(SpecError, match=r"'image'.*text, tabular"):
        make_estimators("image", seed=0, n_items=10)
    with pytest.raises(SpecError):
        out_of_sample_proba(np.zeros((10, 2)), np.zeros(10, dtype=int), kind="image")


def test_out_of_sample_proba_tabular_shape_and_accuracy(wine):
    from labelgate import progress

    X, y = wine
    said: list[tuple[str, str]] = []
    unsubscribe = progress.subscribe(lambda step, detail: said.append((step, detail)))
    try:
        p = out_of_sample_proba(X, y, kind="tabular", n_folds=3, seed=0)
    finally:
        unsubscribe()
    assert [detail.split(":")[0] for _, detail in said] == ["model 1 of 3", "model 2 of 3", "model 3 of 3"]
    assert p.shape == (len(y), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(axis=1) == y).mean() > 0.93


def test_out_of_sample_proba_is_reproducible(wine):
    X, y = wine
    X, y = X[::2], y[::2]
    a = out_of_sample_proba(X, y, kind="tabular", n_folds=3, seed=3)
    b = out_of_sample_proba(X, y, kind="tabular", n_folds=3, seed=3)
    np.testing.assert_array_equal(a, b)


def test_out_of_sample_proba_has_a_column_for_classes_never_labeled():
    X, y = _texts(300)
    p = out_of_sample_proba(X, y, kind="text", n_folds=3, classes=["a", "b", "c", "unused"])
    assert p.shape == (300, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(axis=1) == y).mean() > 0.9
    assert p[:, 3].max() < 0.05


def test_items_left_out_of_training_still_get_probabilities(wine):
    X, y = wine
    mask = np.ones(len(y), dtype=bool)
    mask[::4] = False
    p = out_of_sample_proba(X, y, kind="tabular", n_folds=3, train_mask=mask)
    assert p.shape == (len(y), 3)
    assert (p[~mask].argmax(axis=1) == y[~mask]).mean() > 0.9


def test_bad_inputs_name_the_problem():
    with pytest.raises(DataError, match="shape"):
        out_of_sample_proba(np.zeros((10, 2)), np.zeros(9, dtype=int), kind="tabular")
    with pytest.raises(DataError, match="rows"):
        X = np.zeros((20, 2))
        X[7, 1] = np.nan
        out_of_sample_proba(X, np.arange(20) % 2, kind="tabular")
    with pytest.raises(DataError, match="integer"):
        out_of_sample_proba(np.zeros((20, 2)), np.full(20, 0.5), kind="tabular")
    with pytest.raises(SpecError, match="n_folds"):
        out_of_sample_proba(np.zeros((20, 2)), np.arange(20) % 2, kind="tabular", n_folds=1)


def test_fit_model_predicts_unlabeled_text():
    X, y = _texts(400)
    model = fit_model(X[:300], y[:300], kind="text", classes=3)
    p = predict_proba_unlabeled(model, X[300:])
    assert p.shape == (100, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(axis=1) == y[300:]).mean() > 0.9
    assert predict_proba_unlabeled(model, X[:0]).shape == (0, 3)


def test_save_load_round_trip_gives_identical_predictions(tmp_path, wine):
    X, y = wine
    model = fit_model(X, y, kind="tabular", seed=0)
    path, version = save_model(model, tmp_path / "models")
    assert path.is_file() and len(version) == 12 and version in path.name
    loaded = load_model(path)
    np.testing.assert_array_equal(predict_proba_unlabeled(model, X), predict_proba_unlabeled(loaded, X))
    # The same model saves to the same version; a different model to another.
    assert save_model(model, tmp_path / "again")[1] == version
    other = fit_model(X[::3], y[::3], kind="tabular", seed=0)
    assert save_model(other, tmp_path / "models")[1] != version


def test_text_model_round_trip(tmp_path):
    X, y = _texts(200)
    model = fit_model(X, y, kind="text")
    loaded = load_model(save_model(model, tmp_path)[0])
    np.testing.assert_array_equal(model.predict_proba(X), loaded.predict_proba(X))


def test_load_model_refuses_untrusted_types(tmp_path):
    import skops.io

    path = tmp_path / "evil.skops"
    skops.io.dump({"payload": _NotTrusted()}, path)
    with pytest.raises(LabelgateError, match="untrusted"):
        load_model(path)
    with pytest.raises(LabelgateError, match="does not exist"):
        load_model(tmp_path / "missing.skops")


class _NotTrusted:
    pass
