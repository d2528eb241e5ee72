"""publish: write the decided rows as a new label-set version, with its lineage.

The label-event log gets every observation first (idempotent by event id), then the label set
gets one atomic Delta commit. A crash between the two leaves the previous version as the latest
and a rerun completes the publish without duplicating events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import cleanlab
import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelgate.code_version import code_version
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.ingest import Dataset
from validators.rights import REQUIRED_USE, check_rights


def run_key(spec: LabelingJobSpec, dataset: Dataset) -> str:
    """Identity of a job's result: the same spec on the same data under the same code."""
    raw = f"{spec.spec_hash()}|{dataset.fingerprint}|{code_version()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def build_lineage(
    spec: LabelingJobSpec,
    dataset: Dataset,
    rows: pd.DataFrame,
    *,
    model_version: str,
    model_uri: str,
    models: dict[str, str],
    thresholds: dict[str, dict[str, float]],
    audit_settings: dict[str, Any],
    flow_run_id: str | None = None,
    review: dict[str, Any] | None = None,
    validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to tell where a version came from and whether it may be used.

    validation: what the gates found and did — ``screening`` (per check: found, did, items),
    ``drift`` (the comparison with the previous version and this run's input statistics),
    ``machine_labels`` (the autolabel quality gate's verdict: verified, below_target or
    unverified), ``rights`` (the check's outcome). Kept under the same keys in the lineage.
    """
    status_counts = rows["status"].value_counts().to_dict()
    validation = validation or {}
    return {
        "label_set": spec.output.label_set,
        "job": spec.name,
        "spec_hash": spec.spec_hash(),
        "spec": spec.model_dump(mode="json", by_alias=True),
        "run_key": run_key(spec, dataset),
        "flow_run_id": flow_run_id,
        "data_source": dataset.source,
        "data_fingerprint": dataset.data_fingerprint,
        "items": len(rows),
        "counts": {k: int(v) for k, v in status_counts.items()},
        "sources": {k: int(v) for k, v in rows["source"].value_counts().to_dict().items()},
        "model_version": model_version,
        "model_uri": model_uri,
        "models": models,
        "target_accuracy": spec.autolabel.target_accuracy,
        "thresholds": thresholds,
        "threshold_evidence": threshold_evidence(dataset),
        "machine_accuracy_verified": bool(
            review
            and (
                review["machine_accuracy"]["checked"]
                or any(t.get("probe_checked") for t in thresholds.values())  # tasks/probe.py
            )
        ),
        "review": review,
        "audit": audit_settings,
        "rights": spec.rights.model_dump(mode="json"),
        "rights_of_sources": [r.model_dump(mode="json") for r in spec.all_rights],
        "screening": validation.get("screening", []),
        "drift": validation.get("drift"),
        "machine_labels": validation.get("machine_labels"),
        "rights_check": validation.get("rights"),
        "versions": {"labelgate": code_version(), "cleanlab": cleanlab.__version__},
    }


def threshold_evidence(dataset: Dataset) -> dict[str, Any]:
    """What the thresholds were tuned on: the given labels, less those a model made, the labels
    people gave in learning rounds, and the gold answers."""
    machine = 0 if dataset.machine_made is None else int(dataset.machine_made.sum())
    return {
        "given_labels": dataset.n_labeled,
        "gold_answers": dataset.n_gold,
        "learned_labels": dataset.n_learned,
        "used": int(dataset.evidence.sum()),
        "machine_made_left_out": machine,
        "label_source_column": dataset.label_source_column,
    }


def label_events(
    rows: pd.DataFrame,
    *,
    label_set: str,
    job: str,
    key: str,
    model_version: str,
    observed_at: datetime | None = None,
) -> pd.DataFrame:
    """One event per label observation: the given label (if any) and the model's label."""
    observed_at = observed_at or datetime.now(tz=UTC)
    given = rows[rows["given_label"].notna()]
    frames = [
        pd.DataFrame(
            {
                "item_id": given["item_id"],
                "label": given["given_label"],
                "source": "given",
                "actor": "dataset",
                "confidence": np.nan,
            }
        ),
        pd.DataFrame(
            {
                "item_id": rows["item_id"],
                "label": rows["predicted_label"],
                "source": "model",
                "actor": f"model:{model_version}",
                "confidence": rows["confidence"].astype(float),
            }
        ),
    ]
    events = pd.concat(frames, ignore_index=True)
    events["event_id"] = [
        hashlib.sha256(f"{key}|{i}|{s}".encode()).hexdigest()[:24]
        for i, s in zip(events["item_id"].tolist(), events["source"].tolist(), strict=True)
    ]
    events["label_set"] = label_set
    events["job"] = job
    events["run_key"] = key
    events["observed_at"] = pd.Timestamp(observed_at)
    return events


# -- Prefect task ---------------------------------------------------------------------------


@task(name="check_rights", cache_policy=NO_CACHE, on_completion=[stage_finished])
def check_publish_rights(spec: LabelingJobSpec) -> dict[str, Any]:
    """Refuse (:class:`RightsError`) unless every source's rights allow training today."""
    today = date.today()
    check_rights(spec.all_rights, on=today)
    return {"use": REQUIRED_USE, "checked_on": today.isoformat(), "sources": len(spec.all_rights), "ok": True}


@dataclass(frozen=True)
class Published:
    label_set: str
    version: int
    created: bool
    store: str
    events_recorded: int


@task(name="publish", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=3, on_completion=[stage_finished])
def publish(spec: LabelingJobSpec, rows: pd.DataFrame, lineage: dict[str, Any], people=None) -> Published:
    """Record the label events (people's answers too), then commit the new version (one atomic
    Delta commit)."""
    store = LabelStore()
    if people is not None:
        from tasks.review import human_events

        store.record_events(
            human_events(people, label_set=spec.output.label_set, job=spec.name, key=lineage["run_key"])
        )
    events = label_events(
        rows,
        label_set=spec.output.label_set,
        job=spec.name,
        key=lineage["run_key"],
        model_version=lineage["model_version"],
    )
    inserted = store.record_events(events)
    version, created = store.publish(spec.output.label_set, rows, lineage=lineage)
    logger = get_run_logger()
    if created:
        logger.info("published %s version %d (%d items)", spec.output.label_set, version, len(rows))
    else:
        logger.info(
            "%s version %d already holds this run's labels; nothing new published",
            spec.output.label_set,
            version,
        )
    return Published(spec.output.label_set, version, created, store.root, inserted)
