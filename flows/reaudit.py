"""The nightly re-audit of published label sets (deployment ``reaudit``, deploy/prefect.yaml).

    for each label set ─► re-read its data ─► audit its accepted labels with today's model
                       ─► quarantine the newly suspect ─► publish a new version only if changed

The logic is in ``tasks/reaudit.py``. A set that cannot be re-audited (its data changed or is
gone) is skipped with the reason; the others go on.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from labelgate import run_logs
from labelgate.store import LabelStore
from tasks.reaudit import Reaudited, reaudit_label_set


@flow(name="reaudit", log_prints=False, validate_parameters=True)
def reaudit(label_sets: list[str] | None = None) -> list[Reaudited]:
    """Re-audit the latest version of each label set (all of them when ``label_sets`` is empty)."""
    run_logs.send_to_prefect()
    names = label_sets or LabelStore().names()
    results = [reaudit_label_set(name, flow_run_id=flow_run.get_id()) for name in names]
    changed = [r for r in results if r.created]
    get_run_logger().info(
        "re-audited %d label set(s): %d new version(s), %d skipped",
        len(results),
        len(changed),
        sum(r.skipped is not None for r in results),
    )
    return results
