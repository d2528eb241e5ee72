"""gate: per-class confidence thresholds for accepting machine labels.

A machine label of class c is accepted only when the model's probability reaches ``threshold[c]``,
the lowest threshold at which the lower bound of a Wilson interval on the estimated accuracy of
predictions of c still reaches the target.

The evidence is the out-of-sample predictions on every item that came with a label, scored
against that given label. Given labels that passed the audit cannot serve: the audit passes
exactly the items whose prediction agrees with them, so they would certify anything. Scoring
against all given labels, noise included, understates the model's accuracy when the given labels
are noisy: the gate then accepts fewer machine labels, never more. Human answers (review mode)
are the better evidence; the report and the lineage say which was used.
"""

from __future__ import annotations

import math

import numpy as np
from prefect import task

from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks.ingest import UNLABELED, Dataset

Z_95 = 1.959963984540054


def wilson_lower(correct: np.ndarray | float, total: np.ndarray | float, *, z: float = Z_95):
    """Lower bound of the Wilson score interval for ``correct / total`` (0 where total is 0)."""
    correct = np.asarray(correct, dtype=float)
    total = np.asarray(total, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = correct / total
        centre = p + z * z / (2 * total)
        spread = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
        lower = (centre - spread) / (1 + z * z / total)
    return np.where(total > 0, lower, 0.0)


def threshold_curve(confidence: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage and accuracy of accepting predictions with confidence >= t, for every t.

    confidence: (m,) floats; correct: (m,) bools. Returns arrays sorted by descending threshold:
    ``threshold``, ``coverage`` (share accepted), ``accuracy`` and ``accuracy_lower`` (Wilson).
    """
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    hits = np.cumsum(correct[order])
    total = np.arange(1, len(conf) + 1)
    # a threshold accepts every item at or above it: only cut after the last of tied values
    cut = np.r_[conf[1:] != conf[:-1], True] if len(conf) else np.zeros(0, dtype=bool)
    return {
        "threshold": conf[cut],
        "coverage": total[cut] / max(len(conf), 1),
        "accuracy": hits[cut] / total[cut],
        "accuracy_lower": wilson_lower(hits[cut], total[cut]),
    }


def _lowest_certified(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict[str, float]:
    """The lowest threshold whose accepted set has a Wilson lower bound >= target."""
    entry = {"threshold": math.inf, "coverage": 0.0, "accuracy": float("nan"), "accuracy_lower": float("nan")}
    if len(confidence):
        curve = threshold_curve(confidence, correct)
        ok = np.flatnonzero(curve["accuracy_lower"] >= target)
        if ok.size:
            i = ok.max()
            entry.update(
                {key: float(curve[key][i]) for key in ("threshold", "coverage", "accuracy", "accuracy_lower")}
            )
    return entry


def tune_thresholds(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    *,
    target_accuracy: float,
    classes: list[str],
) -> dict[str, dict[str, float]]:
    """Choose a threshold per class.

    pred_probs: (n, k) out-of-sample probabilities; labels: (n,) trusted class codes.
    Returns ``{class: {"threshold", "support", "coverage", "accuracy", "accuracy_lower", "basis"}}``.

    A class's own predictions decide its threshold when they can certify the target. A class
    with too little evidence for that (with 100 items the Wilson bound cannot pass 0.963) falls
    back to the threshold certified on all classes pooled (``basis: "pooled"``), which bounds the
    accuracy over all accepted machine labels rather than per class. Where neither certifies the
    target the threshold is ``inf``: none of that class's machine labels is accepted.
    """
    predicted = pred_probs.argmax(axis=1)
    confidence = pred_probs.max(axis=1)
    pooled = _lowest_certified(confidence, labels == predicted, target_accuracy)
    out: dict[str, dict[str, float]] = {}
    for code, name in enumerate(classes):
        mask = predicted == code
        own = _lowest_certified(confidence[mask], labels[mask] == code, target_accuracy)
        if math.isfinite(own["threshold"]) or not math.isfinite(pooled["threshold"]):
            entry = {**own, "basis": "class"}
        else:
            chosen = confidence[mask] >= pooled["threshold"]
            hits = int((labels[mask][chosen] == code).sum())
            entry = {
                "threshold": pooled["threshold"],
                "coverage": float(chosen.mean()) if mask.any() else 0.0,
                "accuracy": hits / chosen.sum() if chosen.any() else float("nan"),
                "accuracy_lower": float(wilson_lower(hits, int(chosen.sum()))),
                "basis": "pooled",
            }
        entry["support"] = int(mask.sum())
        out[name] = entry
    return out


# -- Prefect task ---------------------------------------------------------------------------


@task(name="gate", on_completion=[stage_finished])
def gate(spec: LabelingJobSpec, dataset: Dataset, pred_probs: np.ndarray) -> dict[str, dict[str, float]]:
    """Tune per-class thresholds against every given label (see the module docstring)."""
    labeled = dataset.given != UNLABELED
    return tune_thresholds(
        pred_probs[labeled],
        dataset.given[labeled],
        target_accuracy=spec.autolabel.target_accuracy,
        classes=dataset.classes,
    )


def threshold_curves(dataset: Dataset, pred_probs: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per-class coverage/accuracy curves against the given labels, for the report."""
    labeled = dataset.given != UNLABELED
    probs, given = pred_probs[labeled], dataset.given[labeled]
    predicted = probs.argmax(axis=1)
    return {
        name: threshold_curve(probs[predicted == c].max(axis=1), given[predicted == c] == c)
        for c, name in enumerate(dataset.classes)
    }
