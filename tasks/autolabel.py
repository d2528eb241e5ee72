"""Autolabel: scikit-learn models that give class probabilities for labeled and unlabeled items.

Pure functions, no Prefect. Two kinds of input are understood:

- ``"text"``: a 1-D array (or Series, or list) of ``n`` strings.
- ``"tabular"``: a 2-D float array of shape ``(n, d)``.

Labels are always integer codes ``0 .. k-1`` (the position of the class in the job's schema).

Models are picked by the size of the job so that a 1,000,000-item text job stays within a few
minutes on 2 cores: small jobs get a diverse ensemble (several feature spaces and model families),
big jobs get hashed features and linear models trained with a few SGD epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.feature_extraction.text import (
    HashingVectorizer,
    TfidfTransformer,
    TfidfVectorizer,
)
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from labelgate import progress
from labelgate.errors import DataError, LabelgateError, SpecError
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.caching import CACHE_FOR, by_job
from tasks.ingest import UNLABELED, Dataset
from tasks.model_files import model_bytes

logger = logging.getLogger(__name__)

KINDS = ("text", "tabular")
"""Input kinds that :func:`make_estimators` understands."""

SMALL_JOB = 30_000
"""Up to this many items a job gets the full, slower ensemble."""

LARGE_JOB = 200_000
"""From this many items on a job gets hashed features and a few SGD epochs only."""


# --------------------------------------------------------------------------------------------
# Model registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """One ensemble member: an unsupervised featurizer (or None) and a supervised head."""

    name: str
    featurizer_name: str | None
    featurizer: Any
    head: Any


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SpecError(f"unknown model kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _members(kind: str, *, seed: int, n_items: int) -> list[_Member]:
    """The ensemble for a job of ``n_items`` items of the given kind (unfitted)."""
    _check_kind(kind)
    if kind == "tabular":
        members = [
            _Member(
                "logreg",
                None,
                None,
                make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
            ),
            _Member(
                "extra_trees",
                None,
                None,
                ExtraTreesClassifier(
                    n_estimators=200 if n_items <= SMALL_JOB else 100,
                    min_samples_leaf=1 if n_items <= SMALL_JOB else 5,
                    max_features="sqrt",
                    n_jobs=2,
                    random_state=seed,
                ),
            ),
        ]
        if n_items <= SMALL_JOB:
            members.append(
                _Member(
                    "svc_rbf",
                    None,
                    None,
                    make_pipeline(
                        StandardScaler(),
                        CalibratedClassifierCV(
                            SVC(C=1.0, kernel="rbf"), method="sigmoid", cv=3, ensemble=False
                        ),
                    ),
                )
            )
        else:
            members.append(
                _Member(
                    "hist_gradient_boosting",
                    None,
                    None,
                    HistGradientBoostingClassifier(max_iter=100, random_state=seed),
                )
            )
        return members

    # text: linear models trained by SGD (fast, and regularised enough for noisy labels) plus
    # complement naive Bayes, which errs differently.
    alpha = float(np.clip(1.5 / max(n_items, 1), 1e-6, 1e-4))

    def sgd() -> SGDClassifier:
        return SGDClassifier(
            loss="log_loss",
            alpha=alpha,
            max_iter=10 if n_items <= LARGE_JOB else 5,
            tol=None,
            random_state=seed,
        )

    if n_items <= LARGE_JOB:
        word: Any = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=2,
            max_features=2**18,
            sublinear_tf=True,
            dtype=np.float32,
        )
        word_name = "word_tfidf"
    else:
        word = make_pipeline(
            HashingVectorizer(
                ngram_range=(1, 2),
                n_features=2**20,
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            ),
            TfidfTransformer(sublinear_tf=True),
        )
        word_name = "word_hashing"
    members = [
        _Member("word_sgd", word_name, word, sgd()),
        _Member("word_complement_nb", word_name, word, ComplementNB(alpha=1.0)),
    ]
    if n_items <= SMALL_JOB:
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=2,
            max_features=300_000,
            sublinear_tf=True,
            dtype=np.float32,
        )
        members.insert(1, _Member("char_sgd", "char_tfidf", char, sgd()))
    return members


def make_estimators(kind: str, *, seed: int, n_items: int) -> dict[str, BaseEstimator]:
    """Unfitted scikit-learn estimators for one job, picked by input kind and job size.

    Parameters
    ----------
    kind
        ``"text"`` (input: 1-D array of ``n`` strings) or ``"tabular"`` (input: 2-D float array
        of shape ``(n, d)``).
    seed
        Random state for every estimator that has one.
    n_items
        Number of items in the job (labeled plus unlabeled). Jobs up to 30,000 items get a
        diverse ensemble; larger ones get cheaper linear models; from 200,000 items on, text is
        hashed (no vocabulary) and models train with a few SGD epochs.

    Returns
    -------
    dict
        Name -> unfitted estimator taking raw input (a Pipeline where features are needed).
        Every estimator has ``predict_proba``.

    Raises
    ------
    SpecError
        If ``kind`` is not one of :data:`KINDS`.
    """
    out: dict[str, BaseEstimator] = {}
    for m in _members(kind, seed=seed, n_items=n_items):
        if m.featurizer is None:
            out[m.name] = clone(m.head)
        else:
            out[m.name] = Pipeline([("features", clone(m.featurizer)), ("model", clone(m.head))])
    return out


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_input(X: Any, kind: str) -> Any:
    _check_kind(kind)
    if kind == "text":
        arr = np.asarray(X, dtype=object)
        if arr.ndim != 1:
            raise DataError(f"text input must be 1-D (n,), got shape {arr.shape}")
        bad = [i for i, v in enumerate(arr[:100_000]) if not isinstance(v, str)]
        if bad:
            raise DataError(f"text input has non-string values at rows {bad[:5]}")
        return arr
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"tabular input must be 2-D (n, d), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise DataError(f"tabular input has NaN or infinite values at rows {rows[:5].tolist()}")
    return arr


def _as_labels(labels: Any, n: int, n_classes: int | None) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise DataError(f"labels must have shape ({n},) to match X, got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integer codes 0..k-1, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"labels must be >= 0; negative at rows {np.flatnonzero(y < 0)[:5].tolist()}")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.size and y.max() >= k:
        raise DataError(f"labels must be < n_classes={k}; bad at rows {np.flatnonzero(y >= k)[:5].tolist()}")
    return y, k


def _n_classes_of(classes: int | Sequence[Any] | None) -> int | None:
    if classes is None:
        return None
    if isinstance(classes, int | np.integer):
        return int(classes)
    return len(classes)


def _aligned_proba(est: Any, Z: Any, n_classes: int) -> np.ndarray:
    """``est.predict_proba(Z)`` with one column per class 0..k-1 (missing classes get 0)."""
    p = est.predict_proba(Z)
    out = np.zeros((p.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(est.classes_, dtype=np.int64)] = p
    return out


def _normalise_rows(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, None)
    return p / p.sum(axis=1, keepdims=True)


def _take(X: Any, idx: np.ndarray) -> Any:
    return X[idx]


# --------------------------------------------------------------------------------------------
# Out-of-sample probabilities
# --------------------------------------------------------------------------------------------


def out_of_sample_proba(
    X: Any,
    labels: Any,
    *,
    kind: str,
    n_folds: int = 5,
    seed: int = 0,
    classes: int | Sequence[Any] | None = None,
    train_mask: Any = None,
) -> np.ndarray:
    """K-fold out-of-sample class probabilities for labeled items, averaged over an ensemble.

    Every item's probabilities come from models that never saw that item. Unsupervised feature
    extractors (TF-IDF vocabularies) are fitted once on all of ``X``; they never see labels.

    Parameters
    ----------
    X
        ``n`` items: 1-D array of strings (``kind="text"``) or 2-D float array ``(n, d)``
        (``kind="tabular"``).
    labels
        Integer class codes, shape ``(n,)``, values in ``0 .. k-1``.
    kind
        ``"text"`` or ``"tabular"``.
    n_folds
        K for stratified K-fold, >= 2. Jobs over 200,000 items use at most 3 folds.
    seed
        Seed for the fold split and the models.
    classes
        The class list (or its length ``k``). Default: ``max(labels) + 1`` classes.
    train_mask
        Optional boolean array ``(n,)``: items with ``False`` are never used to train (e.g.
        suspected label errors) but still get out-of-sample probabilities.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, k)``, float64, rows sum to 1.

    Raises
    ------
    SpecError
        Unknown ``kind`` or ``n_folds < 2``.
    DataError
        ``X`` and ``labels`` do not match, or too few labeled items to cross-validate.
    """
    Xa = _as_input(X, kind)
    n = len(Xa)
    y, k = _as_labels(labels, n, _n_classes_of(classes))
    if n_folds < 2:
        raise SpecError(f"n_folds must be >= 2, got {n_folds}")
    mask = np.ones(n, dtype=bool) if train_mask is None else np.asarray(train_mask, dtype=bool)
    if mask.shape != (n,):
        raise DataError(f"train_mask must have shape ({n},), got {mask.shape}")
    if n > LARGE_JOB:
        n_folds = min(n_folds, 3)
    counts = np.bincount(y, minlength=k)
    present = counts[counts > 0]
    if n < 2 * n_folds or present.size < 2:
        raise DataError(
            f"need at least {2 * n_folds} labeled items in at least 2 classes for "
            f"{n_folds}-fold out-of-sample probabilities; got {n} items in {present.size} classes"
        )
    if present.min() >= n_folds:
        splitter: Any = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    else:
        logger.info("smallest class has %d items (< %d folds): plain K-fold", present.min(), n_folds)
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(n), y))

    members = _members(kind, seed=seed, n_items=n)
    features: dict[str | None, Any] = {None: Xa}
    for m in members:
        if m.featurizer_name not in features:
            features[m.featurizer_name] = clone(m.featurizer).fit_transform(Xa)

    total = np.zeros((n, k), dtype=np.float64)
    for j, m in enumerate(members):
        progress.working("out-of-sample", f"model {j + 1} of {len(members)}: {m.name}, {len(folds)} folds")
        Z = features[m.featurizer_name]
        for train_idx, test_idx in folds:
            fit_idx = train_idx[mask[train_idx]]
            if np.unique(y[fit_idx]).size < 2:
                # Nothing to learn from in this fold: a uniform guess.
                total[test_idx] += 1.0 / k
                continue
            head = clone(m.head).fit(_take(Z, fit_idx), y[fit_idx])
            total[test_idx] += _normalise_rows(_aligned_proba(head, _take(Z, test_idx), k))
        logger.debug("out-of-sample probabilities done for member %s", m.name)
    return _normalise_rows(total / len(members))


# --------------------------------------------------------------------------------------------
# One fitted model for unlabeled items
# --------------------------------------------------------------------------------------------


class SoftVoteEnsemble(ClassifierMixin, BaseEstimator):
    """Average of ``predict_proba`` over several estimators (scikit-learn contract).

    Parameters
    ----------
    estimators
        List of ``(name, estimator)`` pairs; each is cloned and fitted on the same data.
    n_classes
        Number of classes ``k``; probabilities get one column per class ``0 .. k-1`` even if a
        class is missing from the training labels. Default: ``max(y) + 1``.
    """

    def __init__(self, estimators: list[tuple[str, Any]], n_classes: int | None = None):
        self.estimators = estimators
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any) -> SoftVoteEnsemble:
        y = np.asarray(y, dtype=np.int64)
        k = int(y.max()) + 1 if self.n_classes is None else int(self.n_classes)
        self.classes_ = np.arange(k)
        self.estimators_ = [(name, clone(est).fit(X, y)) for name, est in self.estimators]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        k = len(self.classes_)
        total = sum(_normalise_rows(_aligned_proba(est, X, k)) for _, est in self.estimators_)
        return _normalise_rows(np.asarray(total) / len(self.estimators_))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def fit_model(
    X: Any,
    labels: Any,
    *,
    kind: str,
    seed: int = 0,
    classes: int | Sequence[Any] | None = None,
) -> SoftVoteEnsemble:
    """Fit the job's ensemble on all labeled items, for use on unlabeled ones.

    Parameters
    ----------
    X
        1-D array of ``n`` strings (``kind="text"``) or 2-D float array ``(n, d)``.
    labels
        Integer class codes, shape ``(n,)``, values in ``0 .. k-1``.
    kind
        ``"text"`` or ``"tabular"``.
    seed
        Random state of the models.
    classes
        The class list (or ``k``) so that probabilities have a column for every class.

    Returns
    -------
    SoftVoteEnsemble
        A fitted scikit-learn classifier taking raw input; ``predict_proba`` gives ``(m, k)``.
    """
    Xa = _as_input(X, kind)
    y, k = _as_labels(labels, len(Xa), _n_classes_of(classes))
    if np.unique(y).size < 2:
        raise DataError(f"need labeled items of at least 2 classes to fit a model; got {np.unique(y)}")
    estimators = list(make_estimators(kind, seed=seed, n_items=len(Xa)).items())
    return SoftVoteEnsemble(estimators, n_classes=k).fit(Xa, y)


def predict_proba_unlabeled(model: Any, X: Any) -> np.ndarray:
    """Class probabilities of a fitted model for new items.

    Parameters
    ----------
    model
        A fitted classifier from :func:`fit_model` (or :func:`tasks.model_files.load_model`).
    X
        ``m`` items in the same form the model was fitted on (strings or a 2-D float array).

    Returns
    -------
    numpy.ndarray
        Shape ``(m, k)``, rows sum to 1.
    """
    if not hasattr(model, "classes_"):
        raise LabelgateError("model is not fitted; call fit_model first")
    if len(X) == 0:
        return np.zeros((0, len(model.classes_)))
    p = np.asarray(model.predict_proba(X), dtype=np.float64)
    return _normalise_rows(p)


def describe_models(kind: str, *, seed: int, n_items: int) -> Mapping[str, str]:
    """Name -> short text of each estimator that a job of this size gets (for lineage)."""
    return {name: repr(est) for name, est in make_estimators(kind, seed=seed, n_items=n_items).items()}


# -- Prefect task ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Autolabels:
    """What the autolabel stage hands on.

    pred_probs: (n, k) — out-of-sample (K-fold) for labeled items, from the fitted model for
    unlabeled ones. model_version: content hash of the saved model; model_uri: where it is.
    """

    pred_probs: np.ndarray
    model_version: str
    model_uri: str
    models: dict[str, str]


@task(
    name="autolabel",
    cache_policy=by_job("autolabel"),
    cache_expiration=CACHE_FOR,
    persist_result=True,
    on_completion=[stage_finished],
)
def autolabel(spec: LabelingJobSpec, dataset: Dataset) -> Autolabels:
    """Out-of-sample probabilities for labeled items, machine labels for the rest, and the
    fitted model saved with skops under its content hash."""
    log = get_run_logger()
    given = dataset.training_labels  # people's labels from learning rounds included
    labeled = given != UNLABELED
    k = len(dataset.classes)
    options = {"kind": dataset.kind, "seed": spec.autolabel.seed, "classes": k}
    probs = np.zeros((len(dataset.ids), k))
    log.info(
        "out-of-sample probabilities for %d labeled items (%d folds)",
        int(labeled.sum()),
        spec.autolabel.n_folds,
    )
    probs[labeled] = out_of_sample_proba(
        dataset.X[labeled], given[labeled], n_folds=spec.autolabel.n_folds, **options
    )
    log.info("fitting the model on all %d labeled items", int(labeled.sum()))
    model = fit_model(dataset.X[labeled], given[labeled], **options)
    if (~labeled).any():
        log.info("machine labels for %d unlabeled items", int((~labeled).sum()))
        probs[~labeled] = predict_proba_unlabeled(model, dataset.X[~labeled])
    payload, version = model_bytes(model, canonical=False)
    store = LabelStore()
    uri = store.model_uri(spec.output.label_set, version)
    store.save_bytes(uri, payload)
    models = dict(describe_models(dataset.kind, seed=spec.autolabel.seed, n_items=int(labeled.sum())))
    return Autolabels(probs, version, uri, models)
