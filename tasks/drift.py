"""drift: compare this run with the previous version of the same label set.

The comparison itself is pure (``validators/drift.py``). This stage reads the previous version
from the store and decides what drift changes downstream: a wider audit sample of machine
labels (``validation.drift.audit_share`` when larger than ``review.audit_share``) and thresholds
re-tuned without the pooled fallback (``tasks.gate.tune_thresholds(allow_pooled=False)``).
The report flags it and the lineage keeps the figures, plus this run's input statistics for the
next run to compare with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.ingest import Dataset
from tasks.publish import run_key
from validators.drift import compare_runs, input_columns, summarise_inputs


def drift_report(
    spec: LabelingJobSpec,
    dataset: Dataset,
    pred_probs: np.ndarray,
    *,
    previous_rows,
    previous_lineage: dict[str, Any] | None,
    previous_version: int | None,
) -> dict[str, Any]:
    """What the lineage keeps under ``drift``: the comparison (or why none was made), the
    actions it forces, and this run's ``input_stats``."""
    feature_names = list(spec.dataset.feature_columns or [])
    inputs = input_columns(dataset.X, kind=dataset.kind, feature_names=feature_names or None)
    out: dict[str, Any] = {
        "input_stats": summarise_inputs(inputs),
        "compared_with": previous_version,
        "drifted": False,
        "reasons": [],
        "audit_share": spec.review.audit_share,
        "allow_pooled_thresholds": True,
    }
    if not spec.validation.drift.enabled:
        out["skipped"] = "validation.drift.enabled is false"
        return out
    if previous_rows is None or previous_rows.empty:
        out["skipped"] = "no previous version of this label set"
        return out
    classes = np.asarray(dataset.classes, dtype=object)
    result = compare_runs(
        previous_rows,
        (previous_lineage or {}).get("drift", {}).get("input_stats"),
        predicted=classes[pred_probs.argmax(axis=1)],
        confidence=pred_probs.max(axis=1),
        inputs=inputs,
        classes=dataset.classes,
        p_value=spec.validation.drift.p_value,
        psi_bound=spec.validation.drift.psi_bound,
    )
    out.update({k: v for k, v in result.items()})
    if result["drifted"]:
        out["audit_share"] = max(spec.review.audit_share, spec.validation.drift.audit_share)
        out["allow_pooled_thresholds"] = False
    return out


def comparison_base(store: LabelStore, name: str, *, run_key: str):
    """``(version, rows, lineage)`` of the newest version of ``name`` made by another run than
    ``run_key`` (versions of this very run are skipped back through their parents), or
    ``(None, None, None)`` when there is none."""
    version = store.latest_version(name)
    while version is not None:
        lineage = store.lineage(name, version)
        if lineage.get("run_key") != run_key:
            return version, store.read(name, version), lineage
        version = lineage.get("parent_version")
    return None, None, None


def review_spec(spec: LabelingJobSpec, drift: dict[str, Any]) -> LabelingJobSpec:
    """The spec the review round uses: the audit share that drift asks for."""
    if drift["audit_share"] == spec.review.audit_share:
        return spec
    return spec.model_copy(
        update={"review": spec.review.model_copy(update={"audit_share": drift["audit_share"]})}
    )


# -- Prefect task ---------------------------------------------------------------------------


@task(name="drift", cache_policy=NO_CACHE, on_completion=[stage_finished])
def check_drift(spec: LabelingJobSpec, dataset: Dataset, pred_probs: np.ndarray) -> dict[str, Any]:
    """Compare with the latest published version of ``spec.output.label_set`` that another run
    made: a rerun of the same job on the same data (same run key) compares with what the first
    run compared with, so it makes the same decisions and publishes nothing new."""
    name = spec.output.label_set
    version, rows, lineage = comparison_base(LabelStore(), name, run_key=run_key(spec, dataset))
    out = drift_report(
        spec, dataset, pred_probs, previous_rows=rows, previous_lineage=lineage, previous_version=version
    )
    logger = get_run_logger()
    if out["drifted"]:
        logger.warning(
            "drift against %s v%s: %s; audit share %.2f, thresholds without pooled fallback",
            name,
            version,
            "; ".join(out["reasons"]),
            out["audit_share"],
        )
    else:
        logger.info("drift: %s", out.get("skipped") or "none beyond the bounds")
    return out
