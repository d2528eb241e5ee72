"""screen: the data-screening stage, between ingest and autolabel.

Runs the spec's screening checks (``validation.checks``, defaults in
``validators.screening.DEFAULT_CHECKS``) over the items. What a finding does is the spec's
choice per check:

- ``block``: the job stops here with a :class:`GateError` that lists the findings; nothing is
  published and the previous version stays the latest;
- ``quarantine``: the item is published as ``quarantined`` with the check's reason, out of the
  accepted view. Findings about the input itself (:data:`KEPT_FROM_PEOPLE`: personal data,
  degenerate inputs) are not sent to Label Studio either: people cannot fix them, and personal
  data should not travel further. Other quarantined items go to people like any suspect label;
- ``report``: the report and the lineage list the finding; the item's status is not touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelgate.errors import GateError, preview
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks.ingest import UNLABELED, Dataset
from validators.screening import SCREENING_COLUMNS, run_screening

KEPT_FROM_PEOPLE = frozenset({"personal_data", "degenerate_inputs"})
"""Checks whose quarantined items are never routed to people."""


def given_labels(dataset: Dataset) -> np.ndarray:
    """(n,) class names of the given labels, None where an item has none."""
    classes = np.asarray(dataset.classes, dtype=object)
    return np.where(dataset.given != UNLABELED, classes[np.maximum(dataset.given, 0)], None)


def screen_dataset(dataset: Dataset, checks: list[tuple[str, str, dict[str, Any]]]) -> pd.DataFrame:
    """Findings of ``checks`` on ``dataset``: ``item_id, check, action, reason``."""
    return run_screening(dataset.ids, dataset.X, given_labels(dataset), kind=dataset.kind, checks=checks)


def blocking_message(findings: pd.DataFrame, *, label_set: str) -> str | None:
    """The error text for findings whose action is ``block``; None when there are none."""
    block = findings[findings["action"] == "block"]
    if block.empty:
        return None
    lines = []
    for check, group in block.groupby("check", sort=False):
        examples = "; ".join(
            f"{i}: {r}" for i, r in zip(group["item_id"][:3], group["reason"][:3], strict=True)
        )
        lines.append(f"{check}: {len(group)} item(s) ({preview(group['item_id'].tolist())}), e.g. {examples}")
    return (
        f"screening blocks label set {label_set!r} (validation.checks with action 'block'); "
        "nothing was published:\n  " + "\n  ".join(lines)
    )


def screening_summary(findings: pd.DataFrame, checks: list[tuple[str, str, dict[str, Any]]]) -> list[dict]:
    """Per check, for the report and the lineage: what it found, what it did, why, and the ids."""
    did = {
        "quarantine": "quarantined: kept with the reason, out of the accepted view",
        "block": "blocked the job",
        "report": "reported only; statuses untouched",
    }
    out = []
    for name, action, params in checks:
        found = findings[findings["check"] == name]
        out.append(
            {
                "check": name,
                "action": action,
                "params": params,
                "found": len(found),
                "did": did[action] if len(found) else "nothing to do",
                "items": found["item_id"].tolist()[:50],
                "examples": [
                    {"item_id": i, "reason": r}
                    for i, r in zip(found["item_id"][:5], found["reason"][:5], strict=True)
                ],
            }
        )
    return out


def apply_screening(rows: pd.DataFrame, findings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quarantine the items of ``quarantine`` findings, their reasons first.

    Returns ``(rows for the review round, rows kept from people)``: the second holds the
    quarantined items of :data:`KEPT_FROM_PEOPLE` checks. Together they are every row.
    """
    chosen = findings[findings["action"] == "quarantine"]
    if chosen.empty:
        return rows, rows.iloc[:0]
    why = chosen.groupby("item_id", sort=False).apply(
        lambda g: "; ".join(f"screening {c}: {r}" for c, r in zip(g["check"], g["reason"], strict=True))
    )
    rows = rows.copy()
    hit = rows["item_id"].isin(why.index)
    rows.loc[hit, "status"] = "quarantined"
    rows.loc[hit, "reason"] = rows.loc[hit, "item_id"].map(why) + " (" + rows.loc[hit, "reason"] + ")"
    kept = rows["item_id"].isin(set(chosen.loc[chosen["check"].isin(KEPT_FROM_PEOPLE), "item_id"]))
    return rows[~kept].reset_index(drop=True), rows[kept].reset_index(drop=True)


# -- Prefect task ---------------------------------------------------------------------------


@task(name="screen", cache_policy=NO_CACHE, on_completion=[stage_finished])
def screen(spec: LabelingJobSpec, dataset: Dataset) -> pd.DataFrame:
    """Run the spec's screening checks; raise :class:`GateError` on a ``block`` finding."""
    findings = screen_dataset(dataset, spec.validation.selected_checks())
    counts = findings.groupby("check").size().to_dict() if len(findings) else {}
    get_run_logger().info("screening findings: %s", counts or "none")
    message = blocking_message(findings, label_set=spec.output.label_set)
    if message:
        raise GateError(message)
    return findings[SCREENING_COLUMNS]
