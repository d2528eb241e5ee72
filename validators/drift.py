"""Drift: is this run's data like the previous version's of the same label set?

Three comparisons, each pure, each returning a JSON-ready dict with ``drifted`` and the figures:

- **class distribution** of the model's predicted labels (the ``predicted_label`` column of the
  previous version against this run's): chi-square test of homogeneity on the 2 x k table of
  counts (``scipy.stats.chi2_contingency``); drift when p < ``p_value`` (default 0.01). Predicted
  labels are compared, not published ones, because every item has one and people's corrections
  do not move them.
- **confidence distribution** (the model's top probability, the ``confidence`` column): the
  population stability index (PSI) over 10 bins whose edges are the previous run's deciles.
- **input statistics**: PSI of text length in characters and in words (text), or of every
  feature column (tabular; the largest counts), over the previous run's decile bins. The
  previous run's bins and counts are kept in its lineage (``input_stats``), so the data itself
  need not be kept.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the previous and current shares of a bin,
each floored at 1e-4 so an empty bin does not make it infinite. The usual reading: < 0.1 stable,
0.1-0.2 a moderate shift, > 0.2 a shift worth acting on; the bound is 0.2 (``psi_bound``).
Deciles: with fewer than 10 distinct values some edges coincide and are merged; a value holding a
tenth of the items or more gets a bin of its own (else a run that moved below a constant
confidence would land in the same bin as it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

PSI_BINS = 10
PSI_BOUND = 0.2
P_VALUE = 0.01
SHARE_FLOOR = 1e-4


def bin_edges(values: np.ndarray, *, bins: int = PSI_BINS) -> np.ndarray:
    """Inner edges of ``bins`` quantile bins of ``values`` (duplicates merged): (<= bins-1,)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.zeros(0)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    # a value that fills a tenth or more (decile edges merged on it) gets a bin of its own, so
    # that a later run moving below it is seen too: one more edge just under it
    heavy = [e for e in edges if np.mean(values == e) >= 1 / bins]
    return np.unique(np.r_[edges, np.nextafter(heavy, -np.inf)]) if heavy else edges


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.maximum(e / e.sum(), SHARE_FLOOR)
    a = np.maximum(a / a.sum(), SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def summarise(values: np.ndarray, *, bins: int = PSI_BINS) -> dict[str, list[float]]:
    """``{"edges", "counts"}`` of ``values`` over its own decile bins: what a later run compares with."""
    edges = bin_edges(values, bins=bins)
    return {"edges": edges.tolist(), "counts": bin_counts(values, edges).tolist()}


def psi_against(summary: dict[str, list[float]], values: np.ndarray) -> float:
    """PSI of ``values`` against a :func:`summarise` result of the previous run."""
    edges = np.asarray(summary["edges"], dtype=float)
    return psi(summary["counts"], bin_counts(values, edges))


def input_columns(
    X: np.ndarray, *, kind: str, feature_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The input statistics compared across runs. text: ``text_chars`` and ``text_words`` per
    item; tabular: every feature column, by name."""
    if kind == "text":
        texts = [str(t) for t in X]
        return {
            "text_chars": np.array([len(t) for t in texts], dtype=float),
            "text_words": np.array([len(t.split()) for t in texts], dtype=float),
        }
    X = np.asarray(X, dtype=float)
    names = list(feature_names or [f"f{j}" for j in range(X.shape[1])])
    return {name: X[:, j] for j, name in enumerate(names)}


def input_statistics(
    X: np.ndarray, *, kind: str, feature_names: Sequence[str] | None = None, bins: int = PSI_BINS
) -> dict[str, dict[str, list[float]]]:
    """Decile summaries of every input statistic (:func:`input_columns`), for the lineage."""
    return summarise_inputs(input_columns(X, kind=kind, feature_names=feature_names), bins=bins)


def summarise_inputs(
    inputs: dict[str, np.ndarray], *, bins: int = PSI_BINS
) -> dict[str, dict[str, list[float]]]:
    """:func:`input_statistics` of columns already computed by :func:`input_columns`."""
    return {name: summarise(v, bins=bins) for name, v in inputs.items()}


def class_drift(
    previous: Sequence[str], current: Sequence[str], *, classes: Sequence[str], p_value: float = P_VALUE
) -> dict[str, Any]:
    """Chi-square test of homogeneity of two label samples over ``classes``."""
    prev = pd.Series(previous, dtype=object).value_counts().reindex(classes, fill_value=0)
    cur = pd.Series(current, dtype=object).value_counts().reindex(classes, fill_value=0)
    table = np.array([prev.to_numpy(), cur.to_numpy()], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        stat, p = 0.0, 1.0
    else:
        result = chi2_contingency(table, correction=False)
        stat, p = float(result.statistic), float(result.pvalue)
    return {
        "test": "chi-square",
        "statistic": stat,
        "p_value": p,
        "bound": p_value,
        "drifted": bool(p < p_value),
        "previous_share": {c: float(v) for c, v in (prev / max(prev.sum(), 1)).items()},
        "current_share": {c: float(v) for c, v in (cur / max(cur.sum(), 1)).items()},
    }


def compare_runs(
    previous_rows: pd.DataFrame,
    previous_input_stats: dict[str, dict[str, list[float]]] | None,
    *,
    predicted: Sequence[str],
    confidence: np.ndarray,
    inputs: dict[str, np.ndarray],
    classes: Sequence[str],
    p_value: float = P_VALUE,
    psi_bound: float = PSI_BOUND,
) -> dict[str, Any]:
    """Compare this run with the previous version.

    previous_rows: the previous version's rows (``predicted_label``, ``confidence``);
    previous_input_stats: its lineage's ``input_stats`` (None for versions made before they
    were recorded: the input comparison is then skipped, and says so);
    predicted / confidence: this run's predicted class name and top probability per item;
    inputs: this run's :func:`input_columns`.

    Returns ``{"drifted", "reasons", "class", "confidence", "inputs"}``.
    """
    out: dict[str, Any] = {
        "class": class_drift(previous_rows["predicted_label"], predicted, classes=classes, p_value=p_value)
    }
    prev_conf = previous_rows["confidence"].to_numpy(dtype=float)
    conf_psi = psi_against(summarise(prev_conf), np.asarray(confidence, dtype=float))
    out["confidence"] = {"test": "PSI", "psi": conf_psi, "bound": psi_bound, "drifted": conf_psi > psi_bound}
    if previous_input_stats:
        per = {
            name: psi_against(previous_input_stats[name], values)
            for name, values in inputs.items()
            if name in previous_input_stats
        }
        worst = max(per, key=per.get) if per else None
        out["inputs"] = {
            "test": "PSI",
            "psi": per,
            "worst": worst,
            "bound": psi_bound,
            "drifted": bool(worst is not None and per[worst] > psi_bound),
        }
    else:
        out["inputs"] = {
            "test": "PSI",
            "skipped": "the previous version has no input statistics",
            "drifted": False,
        }
    reasons = []
    if out["class"]["drifted"]:
        reasons.append(f"class distribution (chi-square p={out['class']['p_value']:.2g} < {p_value})")
    if out["confidence"]["drifted"]:
        reasons.append(f"model confidence (PSI {conf_psi:.3f} > {psi_bound})")
    if out["inputs"]["drifted"]:
        worst = out["inputs"]["worst"]
        reasons.append(f"input {worst} (PSI {out['inputs']['psi'][worst]:.3f} > {psi_bound})")
    out["drifted"] = bool(reasons)
    out["reasons"] = reasons
    return out
