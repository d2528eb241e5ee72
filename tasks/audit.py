"""Audit: confident learning over every label, human or machine.

Pure functions, no Prefect. The audit that the pipeline runs is :func:`audit_labels`:

1. out-of-sample class probabilities from an ensemble of diverse models
   (:func:`tasks.autolabel.out_of_sample_proba`);
2. a first pass of cleanlab's confident learning (``prune_by_noise_rate``) marks likely errors;
3. the models are re-fitted without those items (``n_rounds`` times), so the probabilities of every
   item, still out-of-sample, come from models trained on cleaner labels;
4. the final flag (``method``, default ``"predicted_neq_given"``) is taken on those probabilities,
   and every item gets cleanlab's label quality score plus, optionally, how many of its nearest
   neighbours carry the predicted class.

``bench/noise_detection.py`` measures this against bare cleanlab on real datasets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cleanlab
import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from prefect import get_run_logger, task
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from labelgate.errors import DataError, SpecError
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks import autolabel
from tasks.caching import CACHE_FOR, by_job
from tasks.ingest import UNLABELED, Dataset

logger = logging.getLogger(__name__)

METHODS = (
    "predicted_neq_given",
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "low_normalized_margin",
    "low_self_confidence",
)
"""Allowed ``method`` values: cleanlab ``filter_by`` names."""

QUALITY_METHOD = "self_confidence"
"""cleanlab ``get_label_quality_scores`` method behind the ``quality`` column."""

DEFAULT_METHOD = "predicted_neq_given"
DEFAULT_CLEAN_METHOD = "prune_by_noise_rate"
DEFAULT_ROUNDS = 1
DEFAULT_NEIGHBOURS = 5

#: Above this many items, neighbours are searched among a seeded sample of this many items.
MAX_NEIGHBOUR_REFERENCE = 20_000

COLUMNS = ("is_suspect", "quality", "predicted", "p_given", "p_predicted")


def _check_method(name: str, method: str) -> None:
    if method not in METHODS:
        raise SpecError(f"unknown {name} {method!r}; valid values: {', '.join(METHODS)}")


def _check_probs(labels: Any, pred_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or y.ndim != 1:
        raise DataError(
            f"labels must be (n,) and pred_probs (n, k) with the same n; got {y.shape} and {p.shape}"
        )
    if p.shape[1] < 2:
        raise DataError(f"pred_probs needs at least 2 class columns, got {p.shape[1]}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integer codes 0..k-1, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= p.shape[1]))
    if bad.size:
        raise DataError(f"labels outside 0..{p.shape[1] - 1} at rows {bad[:5].tolist()}")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        rows = np.flatnonzero(~np.isclose(p.sum(axis=1), 1.0, atol=1e-3))
        raise DataError(f"pred_probs rows must sum to 1; they do not at rows {rows[:5].tolist()}")
    return y.astype(np.int64), p


def _flag(y: np.ndarray, p: np.ndarray, method: str) -> np.ndarray:
    k = p.shape[1]
    counts = np.bincount(y, minlength=k)
    if method == "predicted_neq_given":
        return p.argmax(axis=1) != y
    if (counts == 0).any() or counts.min() < 2:
        # cleanlab's noise-rate estimates need every class present; fall back to the plain rule.
        logger.info("class counts %s too small for %s; using predicted_neq_given", counts, method)
        return p.argmax(axis=1) != y
    # n_jobs=1: cleanlab forks a pool otherwise, and a fork inside a threaded Prefect run can deadlock
    return np.asarray(find_label_issues(y, p, filter_by=method, n_jobs=1), dtype=bool)


def find_suspects(
    labels: Any,
    pred_probs: Any,
    *,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    neighbours_agree: Any = None,
) -> pd.DataFrame:
    """Flag labels that out-of-sample probabilities say are probably wrong.

    Parameters
    ----------
    labels
        Given labels, int ``(n,)``, codes ``0 .. k-1``.
    pred_probs
        Out-of-sample class probabilities, float ``(n, k)``, rows summing to 1.
    method
        One of :data:`METHODS` (cleanlab ``filter_by``). ``"predicted_neq_given"`` flags every
        item whose most likely class is not its given label; the confident-learning methods flag
        fewer, more certain items.
    seed
        Seeds numpy's global RNG for cleanlab's tie-breaking (kept for reproducibility).
    neighbours_agree
        Optional int ``(n,)`` from :func:`neighbour_agreement`; copied into the output.

    Returns
    -------
    pandas.DataFrame
        One row per item, in input order, columns ``is_suspect`` (bool), ``quality`` (float in
        [0, 1], cleanlab self-confidence label quality, higher is better), ``predicted`` (int,
        argmax class), ``p_given`` and ``p_predicted`` (float), plus ``neighbours_agree`` (int) if
        given.
    """
    _check_method("method", method)
    y, p = _check_probs(labels, pred_probs)
    np.random.seed(seed)  # cleanlab draws from the global RNG in a few places
    flagged = _flag(y, p, method)
    quality = get_label_quality_scores(y, p, method=QUALITY_METHOD)
    predicted = p.argmax(axis=1)
    rows = np.arange(len(y))
    df = pd.DataFrame(
        {
            "is_suspect": flagged.astype(bool),
            "quality": np.clip(np.asarray(quality, dtype=np.float64), 0.0, 1.0),
            "predicted": predicted.astype(np.int64),
            "p_given": p[rows, y],
            "p_predicted": p[rows, predicted],
        }
    )
    if neighbours_agree is not None:
        agree = np.asarray(neighbours_agree, dtype=np.int64)
        if agree.shape != (len(y),):
            raise DataError(f"neighbours_agree must have shape ({len(y)},), got {agree.shape}")
        df["neighbours_agree"] = agree
    return df


def _neighbour_features(X: Any, kind: str) -> Any:
    if kind == "tabular":
        return StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    vec = HashingVectorizer(
        ngram_range=(1, 1), n_features=2**18, alternate_sign=False, norm=None, dtype=np.float32
    )
    return TfidfTransformer(sublinear_tf=True).fit_transform(vec.transform(X))


def neighbour_agreement(
    X: Any,
    labels: Any,
    predicted: Any,
    *,
    kind: str,
    k: int = DEFAULT_NEIGHBOURS,
    rows: Any = None,
    seed: int = 0,
) -> np.ndarray:
    """How many of each item's ``k`` nearest neighbours carry its predicted class as given label.

    Used to explain a quarantine ("4 of 5 near neighbours are labeled 'cat'"). Distances are
    Euclidean on standardised columns (tabular) or cosine on TF-IDF words (text). Above
    :data:`MAX_NEIGHBOUR_REFERENCE` items, neighbours are searched in a seeded sample of that size.

    Parameters
    ----------
    X
        1-D array of ``n`` strings (``kind="text"``) or 2-D float array ``(n, d)``.
    labels
        Given labels, int ``(n,)``.
    predicted
        Predicted class per item, int ``(n,)``.
    kind
        ``"text"`` or ``"tabular"``.
    k
        Number of neighbours, >= 1 (the item itself is never its own neighbour).
    rows
        Optional indices or boolean mask of the items to compute it for (e.g. the suspects);
        the other items get -1.
    seed
        Seed of the reference sample for large inputs.

    Returns
    -------
    numpy.ndarray
        int64 ``(n,)``: counts in ``0 .. k``, or -1 for items not in ``rows``.
    """
    autolabel._check_kind(kind)
    if k < 1:
        raise SpecError(f"k (neighbours) must be >= 1, got {k}")
    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
    n = len(y)
    if pred.shape != (n,) or len(X) != n:
        raise DataError(f"X, labels and predicted must have the same length; got {len(X)}, {n}, {pred.shape}")
    if rows is None:
        query = np.arange(n)
    else:
        r = np.asarray(rows)
        query = np.flatnonzero(r) if r.dtype == bool else r.astype(np.int64)
    out = np.full(n, -1, dtype=np.int64)
    if query.size == 0 or n < 2:
        return out
    Z = _neighbour_features(X, kind)
    if n > MAX_NEIGHBOUR_REFERENCE:
        rng = np.random.default_rng(seed)
        ref = np.sort(rng.choice(n, size=MAX_NEIGHBOUR_REFERENCE, replace=False))
    else:
        ref = np.arange(n)
    kk = min(k, len(ref) - 1)
    metric = "cosine" if sparse.issparse(Z) else "euclidean"
    nn = NearestNeighbors(n_neighbors=kk + 1, metric=metric, algorithm="brute").fit(Z[ref])
    chunk = 500
    for start in range(0, query.size, chunk):
        q = query[start : start + chunk]
        _, idx = nn.kneighbors(Z[q])
        neigh = ref[idx]
        # drop the item itself if it is in the reference set, else the farthest one
        not_self = neigh != q[:, None]
        keep = np.zeros_like(not_self)
        for i in range(len(q)):
            keep[i, np.flatnonzero(not_self[i])[:kk]] = True
        agree = (y[neigh] == pred[q][:, None]) & keep
        out[q] = agree.sum(axis=1)
    return out


def audit_labels(
    X: Any,
    labels: Any,
    *,
    kind: str,
    seed: int = 0,
    n_folds: int = 5,
    classes: int | Sequence[Any] | None = None,
    method: str = DEFAULT_METHOD,
    clean_method: str = DEFAULT_CLEAN_METHOD,
    n_rounds: int = DEFAULT_ROUNDS,
    neighbours: int = DEFAULT_NEIGHBOURS,
    pred_probs: np.ndarray | None = None,
    train_mask: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Audit every label: ensemble out-of-sample probabilities, re-fitted on cleaned labels.

    Parameters
    ----------
    X
        1-D array of ``n`` strings (``kind="text"``) or 2-D float array ``(n, d)``.
    labels
        Given labels, int ``(n,)``, codes ``0 .. k-1``.
    kind
        ``"text"`` or ``"tabular"``.
    seed
        Seed of folds, models and cleanlab.
    n_folds
        K of the K-fold out-of-sample probabilities, >= 2.
    classes
        The class list (or ``k``); default ``max(labels) + 1`` classes.
    method
        Final flag rule, one of :data:`METHODS`.
    clean_method
        Rule that picks the items left out of training before each re-fit, one of :data:`METHODS`.
    n_rounds
        Number of re-fits on cleaned labels (0 = plain ensemble probabilities).
    neighbours
        ``k`` for the ``neighbours_agree`` column, computed for suspects only (other rows -1);
        0 leaves the column out.
    pred_probs
        First-round out-of-sample probabilities ``(n, k)`` if already computed (the autolabel
        stage has them), so they are not computed twice.
    train_mask
        Optional ``(n,)`` bools: labels with False are audited but never trained on (a model's
        own labels, which would teach the models their own confusions).

    Returns
    -------
    (suspects, pred_probs)
        ``suspects``: the :func:`find_suspects` frame (one row per item, in input order);
        ``pred_probs``: the final out-of-sample probabilities, float ``(n, k)``.
    """
    _check_method("method", method)
    _check_method("clean_method", clean_method)
    if n_rounds < 0:
        raise SpecError(f"n_rounds must be >= 0, got {n_rounds}")
    y = np.asarray(labels)
    trainable = np.ones(len(y), dtype=bool) if train_mask is None else np.asarray(train_mask, dtype=bool)
    if pred_probs is None:
        probs = autolabel.out_of_sample_proba(
            X, y, kind=kind, n_folds=n_folds, seed=seed, classes=classes, train_mask=trainable
        )
    else:
        probs = np.asarray(pred_probs, dtype=float)
    y = y.astype(np.int64)
    for r in range(n_rounds):
        np.random.seed(seed)
        suspects = _flag(y, probs, clean_method)
        logger.info("audit round %d: re-fitting without %d likely errors", r + 1, suspects.sum())
        probs = autolabel.out_of_sample_proba(
            X, y, kind=kind, n_folds=n_folds, seed=seed, classes=classes, train_mask=trainable & ~suspects
        )
    df = find_suspects(y, probs, method=method, seed=seed)
    if neighbours > 0:
        df["neighbours_agree"] = neighbour_agreement(
            X,
            y,
            df["predicted"].to_numpy(),
            kind=kind,
            k=neighbours,
            rows=df["is_suspect"].to_numpy(),
            seed=seed,
        )
    return df, probs


def audit_settings(
    *,
    method: str = DEFAULT_METHOD,
    clean_method: str = DEFAULT_CLEAN_METHOD,
    n_rounds: int = DEFAULT_ROUNDS,
    n_folds: int = 5,
    seed: int = 0,
    neighbours: int = DEFAULT_NEIGHBOURS,
    kind: str | None = None,
    n_items: int | None = None,
) -> dict[str, Any]:
    """JSON-serialisable description of an audit, for the lineage of a published label set.

    Pass the same keyword values given to :func:`audit_labels`; with ``kind`` and ``n_items`` the
    ensemble members are listed too.
    """
    _check_method("method", method)
    _check_method("clean_method", clean_method)
    settings: dict[str, Any] = {
        "method": method,
        "filter_by": method,
        "clean_method": clean_method,
        "n_rounds": int(n_rounds),
        "n_folds": int(n_folds),
        "seed": int(seed),
        "neighbours": int(neighbours),
        "quality_score": QUALITY_METHOD,
        "cleanlab_version": cleanlab.__version__,
        "thresholds": "cleanlab per-class self-confidence thresholds"
        if method != "predicted_neq_given"
        else "argmax of out-of-sample probabilities != given label",
    }
    if kind is not None and n_items is not None:
        settings["kind"] = kind
        settings["n_items"] = int(n_items)
        settings["models"] = sorted(autolabel.make_estimators(kind, seed=seed, n_items=n_items).keys())
    return settings


# -- Prefect task ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Audited:
    """The audit of the given labels.

    table: one row per labeled item in dataset order (``is_suspect, quality, predicted, ...``),
    or None when the audit is disabled. pred_probs: (n, k) for every item; for labeled items the
    audit's final out-of-sample probabilities. settings: what ran, for the lineage.
    """

    table: pd.DataFrame | None
    pred_probs: np.ndarray
    settings: dict[str, Any]


@task(
    name="audit",
    cache_policy=by_job("audit"),
    cache_expiration=CACHE_FOR,
    persist_result=True,
    on_completion=[stage_finished],
)
def audit(spec: LabelingJobSpec, dataset: Dataset, machine: Any) -> Audited:
    """Confident learning over every given label, on out-of-sample probabilities."""
    if not spec.audit.enabled:
        return Audited(None, machine.pred_probs, {"enabled": False})
    labeled = dataset.given != UNLABELED
    options = {"seed": spec.autolabel.seed, "n_folds": spec.autolabel.n_folds}
    get_run_logger().info("auditing %d given labels", int(labeled.sum()))
    table, probs = audit_labels(
        dataset.X[labeled],
        dataset.given[labeled],
        kind=dataset.kind,
        classes=len(dataset.classes),
        pred_probs=machine.pred_probs[labeled],
        **options,
    )
    pred_probs = machine.pred_probs.copy()
    pred_probs[labeled] = probs
    settings = audit_settings(kind=dataset.kind, n_items=int(labeled.sum()), **options)
    return Audited(table, pred_probs, settings)
