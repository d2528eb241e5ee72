"""quarantine: decide each item's status and write the reason a person can read.

- A given label the audit flags becomes ``quarantined``: kept, never deleted, with its score and
  a reason such as "given 'positive'; the model gives 'negative' p=0.94; 4 of 5 near neighbours
  agree". The accepted view leaves it out.
- A given label the audit passes is ``accepted``.
- A machine label is ``accepted`` when its probability reaches its class threshold, otherwise it
  ``needs_review`` (it keeps the model's label as a suggestion).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks.audit import DEFAULT_NEIGHBOURS
from tasks.ingest import UNLABELED, Dataset


def _fmt_p(p: float) -> str:
    return f"{p:.2f}" if p < 0.995 else f"{p:.3f}"


def suspect_reason(
    given: str,
    predicted: str,
    p_predicted: float,
    p_given: float,
    neighbours_agree: int | None,
    n_neighbours: int | None,
) -> str:
    """'given 'a'; the model gives 'b' p=0.94 (p('a')=0.03); 4 of 5 near neighbours agree'."""
    if predicted != given:
        text = f"given {given!r}; the model gives {predicted!r} p={_fmt_p(p_predicted)}"
        text += f" (p({given!r})={_fmt_p(p_given)})"
    else:
        text = f"given {given!r}; the model is unsure: p={_fmt_p(p_given)}"
    if neighbours_agree is not None and n_neighbours:
        text += f"; {neighbours_agree} of {n_neighbours} near neighbours agree with the model"
    return text


def decide_status(
    dataset: Dataset,
    pred_probs: np.ndarray,
    audit: pd.DataFrame | None,
    thresholds: dict[str, dict[str, float]],
    *,
    target_accuracy: float,
    n_neighbours: int | None = None,
) -> pd.DataFrame:
    """One row per item, in the label-set schema.

    pred_probs: (n, k) — out-of-sample for labeled items, from the fitted model for the others.
    audit: one row per labeled item (in dataset order) with ``is_suspect``, ``quality`` and
    optionally ``neighbours_agree``; None when the audit is disabled.
    """
    classes = np.asarray(dataset.classes, dtype=object)
    predicted = pred_probs.argmax(axis=1)
    confidence = pred_probs.max(axis=1)
    labeled = dataset.given != UNLABELED
    n = len(dataset.ids)

    status = np.empty(n, dtype=object)
    source = np.where(labeled, "given", "model").astype(object)
    label = np.where(labeled, classes[np.maximum(dataset.given, 0)], classes[predicted]).astype(object)
    quality = np.full(n, np.nan)
    reason = np.empty(n, dtype=object)

    # given labels: the audit decides
    idx = np.flatnonzero(labeled)
    suspect = np.zeros(len(idx), dtype=bool)
    agree = None
    if audit is not None:
        suspect = audit["is_suspect"].to_numpy(dtype=bool)
        quality[idx] = audit["quality"].to_numpy(dtype=float)
        if "neighbours_agree" in audit:
            agree = audit["neighbours_agree"].to_numpy()
    status[idx] = np.where(suspect, "quarantined", "accepted")
    for j, i in enumerate(idx):
        g = dataset.given[i]
        if suspect[j]:
            reason[i] = suspect_reason(
                classes[g],
                classes[predicted[i]],
                float(confidence[i]),
                float(pred_probs[i, g]),
                None if agree is None else int(agree[j]),
                n_neighbours,
            )
        else:
            reason[i] = (
                "given label passed the confident-learning audit"
                if audit is not None
                else "given label (audit disabled)"
            )

    # machine labels: the per-class threshold decides
    for i in np.flatnonzero(~labeled):
        name = classes[predicted[i]]
        t = thresholds[name]["threshold"]
        p = float(confidence[i])
        quality[i] = p
        if p >= t:
            status[i] = "accepted"
            reason[i] = f"model gives {name!r} p={_fmt_p(p)} >= threshold {t:.3f}"
            if thresholds[name].get("basis") == "probe":
                reason[i] += " (provisional: people check a probe of these; tasks/probe.py)"
        else:
            status[i] = "needs_review"
            bar = "no threshold reaches" if not np.isfinite(t) else f"below threshold {t:.3f} for"
            reason[i] = f"model gives {name!r} p={_fmt_p(p)}, {bar} {target_accuracy:.0%} estimated accuracy"

    return pd.DataFrame(
        {
            "item_id": dataset.ids.astype(str),
            "label": label,
            "status": status,
            "source": source,
            "quality": quality,
            "confidence": confidence,
            "given_label": np.where(labeled, classes[np.maximum(dataset.given, 0)], None),
            "predicted_label": classes[predicted],
            "reason": reason,
        }
    )


# -- Prefect task ---------------------------------------------------------------------------


@task(name="quarantine", cache_policy=NO_CACHE, on_completion=[stage_finished])
def quarantine(
    spec: LabelingJobSpec,
    dataset: Dataset,
    pred_probs: np.ndarray,
    audit_table: pd.DataFrame | None,
    thresholds: dict[str, dict[str, float]],
) -> pd.DataFrame:
    """Status, label, source and reason for every item."""
    rows = decide_status(
        dataset,
        pred_probs,
        audit_table,
        thresholds,
        target_accuracy=spec.autolabel.target_accuracy,
        n_neighbours=DEFAULT_NEIGHBOURS,
    )
    counts = rows["status"].value_counts().to_dict()
    get_run_logger().info("statuses: %s", counts)
    return rows
