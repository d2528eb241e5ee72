"""route: which items go to people, and the reason each labeler sees.

Sent to review, in this order of precedence:
1. gold items (known answers, mixed in to score annotators);
2. quarantined given labels (a re-review round);
3. machine labels below their class threshold (``needs_review``);
4. a probe: a seeded random sample of the provisionally accepted machine labels of each class no
   evidence certified, whose answers set its threshold (``tasks/probe.py``);
5. a seeded random sample of auto-accepted machine labels, which estimates their accuracy;
6. items people labeled in a learning round (``tasks/learning.py``): their answers are in, and
   they join the job's labels as people's;
7. machine labels the machine-label gate demoted (``tasks/gate.py``): a second round in the same
   run, when people's answers on the audit sample put the machine labels under the target; and
   provisional machine labels their probe did not certify.

Items people already answered in the job's project that no round of this run sends (an earlier
run routed them, before people's answers changed the model or the spec changed) join at the end,
after the gates, with the answers they have (:func:`with_earlier_answers`,
``flows.review_round.earlier_answers``): a person's answer is never dropped from the label set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REASONS = {
    "gold": "gold item: its answer is known; it measures labeling quality",
    "quarantined": "re-review: the audit doubts this label",
    "low_confidence": "the model is unsure",
    "audit_sample": "random audit sample of machine labels the model was sure of",
    "probe": "probe: a random sample of the model's most confident labels of a class nothing "
    "certified yet; people's answers set the class threshold",
    "gate_demoted": "people found the machine labels under the target accuracy; this one is "
    "under the raised threshold",
    "probe_demoted": "the probe of this class's most confident machine labels did not certify this one",
    "learning": "learning round: people's answers teach the model before the rest is decided",
    "answered_earlier": "answered in an earlier run of this job; this run's routing does not send "
    "it, but people's answers count",
}

CHECK_ROUTES = ("audit_sample", "probe", "learning")
"""Routes where people check a machine label (adjudicated: ``tasks.review.adjudication``)."""
LABEL_ROUTES = ("low_confidence", "gate_demoted", "probe_demoted")
"""Routes where people give the label (asked until it is sure: ``tasks.review.label_certainty``)."""


def route_items(
    rows: pd.DataFrame,
    *,
    audit_share: float,
    seed: int,
    gold_ids: set[str] | frozenset[str] = frozenset(),
    demoted_ids: set[str] | frozenset[str] = frozenset(),
    minimum_audit: int = 0,
    probe: dict[str, int] | None = None,
    probe_demoted_ids: set[str] | frozenset[str] = frozenset(),
    learned_ids: set[str] | frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Pick the items to review.

    rows: the decided label-set rows (``item_id, status, source, reason, ...``).
    audit_share: share (0..1) of auto-accepted machine labels sampled for a human check.
    minimum_audit: the audit sample's floor (all of them when fewer), so that it can verify the
    target at all: the flow passes ``tasks.gate.labels_needed(target)`` (0.98: 149). Used only
    when ``audit_share`` > 0.
    demoted_ids: machine labels the machine-label gate sent back (those not already routed).
    probe: class -> probe size (``tasks.probe.probe_sizes``): that many of the class's accepted
    machine labels (``predicted_label``) are picked first; the audit sample is drawn from the
    other classes' (each accepted machine label is verified by one check: its probe or the audit).
    probe_demoted_ids: provisional machine labels their probe did not certify.
    learned_ids: items people labeled in learning rounds (``Dataset.learned_ids``); never in the
    probes or the audit sample.
    Returns ``item_id, route, route_reason`` (one row per routed item; ``route`` is a key of
    :data:`REASONS`; ``route_reason`` adds the item's own reason).
    """
    route = pd.Series(None, index=rows.index, dtype=object)
    route[rows["status"] == "needs_review"] = "low_confidence"
    route[rows["status"] == "quarantined"] = "quarantined"
    learned = rows["item_id"].isin(learned_ids)
    route[learned] = "learning"
    machine_ok = (rows["status"] == "accepted") & (rows["source"] == "model") & ~learned
    rng = np.random.default_rng(seed)
    for name, size in sorted((probe or {}).items()):
        mine = np.flatnonzero((machine_ok & (rows["predicted_label"] == name)).to_numpy())
        route.iloc[rng.choice(mine, size=min(size, len(mine)), replace=False)] = "probe"
    # a probed class's machine labels are verified by its probe; the audit checks the others
    audited = machine_ok & route.isna()
    if probe:
        audited &= ~rows["predicted_label"].isin(list(probe))
    candidates = np.flatnonzero(audited.to_numpy())
    n_audit = int(np.ceil(audit_share * len(candidates))) if len(candidates) else 0
    if audit_share > 0:
        n_audit = max(n_audit, min(minimum_audit, len(candidates)))
    if n_audit:
        picked = rng.choice(candidates, size=min(n_audit, len(candidates)), replace=False)
        route.iloc[picked] = "audit_sample"
    route[route.isna() & rows["item_id"].isin(demoted_ids)] = "gate_demoted"
    route[route.isna() & rows["item_id"].isin(probe_demoted_ids)] = "probe_demoted"
    route[rows["item_id"].isin(gold_ids)] = "gold"
    chosen = route.notna()
    out = rows.loc[chosen, ["item_id", "reason"]].copy()
    out["route"] = route[chosen]
    out["route_reason"] = [
        f"{REASONS[r]} ({why})" if r in ("quarantined", "low_confidence") else REASONS[r]
        for r, why in zip(out["route"], out["reason"], strict=True)
    ]
    return out[["item_id", "route", "route_reason"]].reset_index(drop=True)


def with_earlier_answers(routed: pd.DataFrame, annotations: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``routed`` plus the items of ``rows`` that have a usable answer in ``annotations`` (the
    project's, ``status == "ok"``) but are not routed, as route ``answered_earlier``. Those items
    are asked nothing more; their answers are folded in like the others'."""
    answered = set(annotations.loc[annotations["status"] == "ok", "item_id"].astype(str))
    earlier = rows["item_id"].isin(answered) & ~rows["item_id"].isin(set(routed["item_id"]))
    if not earlier.any():
        return routed
    extra = pd.DataFrame(
        {
            "item_id": rows.loc[earlier, "item_id"].to_numpy(),
            "route": "answered_earlier",
            "route_reason": REASONS["answered_earlier"],
        }
    )
    return pd.concat([routed, extra], ignore_index=True)
