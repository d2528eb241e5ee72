"""route: which items go to people, and the reason each labeler sees.

Sent to review, in this order of precedence:
1. gold items (known answers, mixed in to score annotators);
2. quarantined given labels (a re-review round);
3. machine labels below their class threshold (``needs_review``);
4. a seeded random sample of auto-accepted machine labels, which estimates their accuracy;
5. machine labels the machine-label gate demoted (``tasks/gate.py``): a second round in the same
   run, when people's answers on the audit sample put the machine labels under the target.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REASONS = {
    "gold": "gold item: its answer is known; it measures labeling quality",
    "quarantined": "re-review: the audit doubts this label",
    "low_confidence": "the model is unsure",
    "audit_sample": "random audit sample of machine labels the model was sure of",
    "gate_demoted": "people found the machine labels under the target accuracy; this one is "
    "under the raised threshold",
}


def route_items(
    rows: pd.DataFrame,
    *,
    audit_share: float,
    seed: int,
    gold_ids: set[str] | frozenset[str] = frozenset(),
    demoted_ids: set[str] | frozenset[str] = frozenset(),
    minimum_audit: int = 0,
) -> pd.DataFrame:
    """Pick the items to review.

    rows: the decided label-set rows (``item_id, status, source, reason, ...``).
    audit_share: share (0..1) of auto-accepted machine labels sampled for a human check.
    minimum_audit: the audit sample's floor (all of them when fewer), so that it can verify the
    target at all: the flow passes ``tasks.gate.labels_needed(target)`` (0.98: 189). Used only
    when ``audit_share`` > 0.
    demoted_ids: machine labels the machine-label gate sent back (those not already routed).
    Returns ``item_id, route, route_reason`` (one row per routed item; ``route`` is a key of
    :data:`REASONS`; ``route_reason`` adds the item's own reason).
    """
    route = pd.Series(None, index=rows.index, dtype=object)
    route[rows["status"] == "needs_review"] = "low_confidence"
    route[rows["status"] == "quarantined"] = "quarantined"
    machine_ok = (rows["status"] == "accepted") & (rows["source"] == "model")
    candidates = np.flatnonzero(machine_ok.to_numpy())
    n_audit = int(np.ceil(audit_share * len(candidates))) if len(candidates) else 0
    if audit_share > 0:
        n_audit = max(n_audit, min(minimum_audit, len(candidates)))
    if n_audit:
        rng = np.random.default_rng(seed)
        picked = rng.choice(candidates, size=min(n_audit, len(candidates)), replace=False)
        route.iloc[picked] = "audit_sample"
    route[route.isna() & rows["item_id"].isin(demoted_ids)] = "gate_demoted"
    route[rows["item_id"].isin(gold_ids)] = "gold"
    chosen = route.notna()
    out = rows.loc[chosen, ["item_id", "reason"]].copy()
    out["route"] = route[chosen]
    out["route_reason"] = [
        f"{REASONS[r]} ({why})" if r in ("quarantined", "low_confidence") else REASONS[r]
        for r, why in zip(out["route"], out["reason"], strict=True)
    ]
    return out[["item_id", "route", "route_reason"]].reset_index(drop=True)
