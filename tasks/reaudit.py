"""reaudit: audit a published label set again, with today's model, and quarantine what has
newly become suspect.

Labels that passed once can become suspect later: more labels arrive, models change, the
audit improves. The nightly re-audit (``flows/reaudit.py``) re-reads the job's data and runs
the same confident-learning audit as a job (:func:`tasks.audit.audit_labels`) over the version's
accepted labels, machine labels included, with the current ensemble trained on the labels people
made (given, human, gold) only: trained on its own labels too, a model learns its own confusions
and never flags them. With too few labels made by people (under two classes, or under two per
fold), it trains on all.

- An accepted item that the audit now flags becomes ``quarantined``, with a reason that says
  so; nothing else changes. A quarantined item stays quarantined even if the audit now clears
  it: only a person lifts a quarantine.
- A new version is published only when some item changed, so a night with nothing new adds no
  version, and a rerun of the same night adds nothing twice (the store's run key and content
  hash).
- A set whose data file changed or vanished since its version is skipped with the reason: its
  rows no longer describe that file, and a new job is the way to label it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelgate.errors import DataError, LabelgateError
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tasks.audit import audit_labels, audit_settings
from tasks.ingest import Dataset, load_dataset


@dataclass(frozen=True)
class Reaudited:
    """What the re-audit of one label set did. ``version`` is the new version, or the one that
    was audited when nothing changed (``created`` False); ``skipped`` says why nothing ran."""

    label_set: str
    audited_version: int | None
    version: int | None
    created: bool
    newly_quarantined: int
    skipped: str | None = None


def reaudit_rows(
    rows: pd.DataFrame,
    dataset: Dataset,
    *,
    seed: int = 0,
    n_folds: int = 5,
    when: str | None = None,
) -> tuple[pd.DataFrame, pd.Index]:
    """Audit the accepted labels of ``rows`` (a label-set version) on ``dataset``'s features.

    rows: the version's rows (``item_id``, ``label``, ``status``, ...); every item must be in
    ``dataset``. Returns the updated rows and the ids newly quarantined.
    """
    when = when or datetime.now(tz=UTC).date().isoformat()
    position = pd.Series(np.arange(len(dataset.ids)), index=dataset.ids.astype(str))
    missing = rows.loc[~rows["item_id"].isin(position.index), "item_id"]
    if len(missing):
        raise DataError(
            f"{len(missing)} item(s) of the label set are not in the data, e.g. {missing.iloc[0]!r}"
        )
    classes = list(dataset.classes)
    audited = rows[(rows["status"] == "accepted") & rows["label"].isin(classes)]
    if audited["label"].nunique() < 2 or len(audited) < 2 * n_folds:
        return rows.copy(), pd.Index([])
    X = dataset.X[position[audited["item_id"]].to_numpy()]
    y = audited["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
    by_people = (audited["source"] != "model").to_numpy()
    if np.unique(y[by_people]).size < 2 or by_people.sum() < 2 * n_folds:
        by_people = np.ones(len(y), dtype=bool)  # too few labels people made: learn from all
    table, probs = audit_labels(
        X, y, kind=dataset.kind, classes=len(classes), seed=seed, n_folds=n_folds, train_mask=by_people
    )
    flagged = table["is_suspect"].to_numpy(dtype=bool)
    out = rows.copy()
    index = audited.index[flagged]
    predicted = np.asarray(classes)[probs[flagged].argmax(axis=1)]
    quality = table["quality"].to_numpy(dtype=float)[flagged]
    out.loc[index, "status"] = "quarantined"
    out.loc[index, "quality"] = quality
    out.loc[index, "reason"] = [
        f"re-audit {when}: the model gives {p!r} p={probs[i].max():.2f} against label {label!r} "
        f"(label quality {q:.2f})"
        for i, p, label, q in zip(
            np.flatnonzero(flagged), predicted, audited["label"][flagged], quality, strict=True
        )
    ]
    return out, pd.Index(out.loc[index, "item_id"])


def reaudit_lineage(
    parent: dict[str, Any],
    rows: pd.DataFrame,
    *,
    kind: str,
    audited_version: int,
    newly: pd.Index,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """The new version's lineage: the parent's, with what the re-audit did."""
    counts = rows["status"].value_counts().to_dict()
    key = hashlib.sha256(f"{parent.get('run_key')}|reaudit|{audited_version}".encode()).hexdigest()[:16]
    return {
        **parent,
        "job": "reaudit",
        "run_key": key,
        "flow_run_id": flow_run_id,
        "counts": {k: int(v) for k, v in counts.items()},
        "reaudit": {
            "audited_version": audited_version,
            "newly_quarantined": len(newly),
            "item_ids": [str(i) for i in newly[:1000]],
            "audit": audit_settings(kind=kind, n_items=int((rows["status"] == "accepted").sum())),
            "at": datetime.now(tz=UTC).isoformat(),
        },
    }


@task(name="reaudit-label-set", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def reaudit_label_set(name: str, *, flow_run_id: str | None = None) -> Reaudited:
    """Re-audit the latest version of label set ``name``; publish a new version if it changed."""
    logger = get_run_logger()
    store = LabelStore()
    version = store.latest_version(name)
    if version is None:
        return Reaudited(name, None, None, False, 0, skipped="no such label set")
    lineage = store.lineage(name, version)
    try:
        spec = LabelingJobSpec.model_validate(lineage["spec"])
        dataset = load_dataset(spec.dataset, spec.label_schema)
    except (KeyError, LabelgateError, ValueError) as exc:
        reason = f"cannot re-read its data: {str(exc).splitlines()[0]}"
        logger.warning("%s v%d skipped: %s", name, version, reason)
        return Reaudited(name, version, version, False, 0, skipped=reason)
    if lineage.get("data_fingerprint") and dataset.fingerprint != lineage["data_fingerprint"]:
        reason = f"its data {dataset.source} changed since version {version}; run the job again"
        logger.warning("%s v%d skipped: %s", name, version, reason)
        return Reaudited(name, version, version, False, 0, skipped=reason)
    rows = store.read(name, version)
    updated, newly = reaudit_rows(rows, dataset, seed=spec.autolabel.seed, n_folds=spec.autolabel.n_folds)
    if not len(newly):
        logger.info("%s v%d: nothing newly suspect; no new version", name, version)
        return Reaudited(name, version, version, False, 0)
    new_lineage = reaudit_lineage(
        lineage, updated, kind=dataset.kind, audited_version=version, newly=newly, flow_run_id=flow_run_id
    )
    new_version, created = store.publish(name, updated, lineage=new_lineage)
    logger.info("%s: %d newly suspect labels quarantined in version %d", name, len(newly), new_version)
    return Reaudited(name, version, new_version, created, len(newly))
