"""probe: when no evidence certifies a class's threshold, people check a sample of its most
confident machine labels first, instead of labeling all of them.

The thresholds are tuned on the given labels (``tasks/gate.py``): a random sample of the data.
Its few items in the high-confidence region cannot certify a threshold there (the gate's bound at
0.95 needs at least 59 answers, all right, and about 150 at the accuracy halfway to 1; a random
900 of 13,891 texts put 24 above p = 0.95), so such a class
gets no threshold and every one of its machine labels goes to people. A probe puts the checks
where the decision is. In review mode, for each class without a threshold:

1. :func:`probe_thresholds`: its ``PROBE_REGION`` x :func:`tasks.gate.powered_size` most
   confident machine labels (the region) are accepted *provisionally*;
2. ``tasks.route.route_items`` sends a seeded random sample of :func:`tasks.gate.powered_size`
   of them to people (route ``probe``; the review round adjudicates each like an audited label);
3. :func:`verify_probes`: people's answers on that sample certify a threshold inside the region by
   the same fixed-sequence test as the gate. Provisional machine labels under it go to
   people (route ``probe_demoted``, in the second review round of the same run), so nothing is
   published on a probe that did not certify it; unanswered probes certify nothing.

A class too small for a region of twice the probe is not probed: the probe would be most of it.
The probe costs no extra human labels: without it, people would label the probed items anyway.
Measured in ``bench/validation.py`` (threshold tuning).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks.consensus import plurality_answers
from tasks.gate import lowest_certified, powered_size
from tasks.ingest import UNLABELED, Dataset

#: The provisional region holds this many times the probe's size (measured on the 3-class texts of
#: ``bench/validation.py``: 2 accepted too little beyond the probe itself, 5 certified less often).
PROBE_REGION = 3


def probe_thresholds(
    thresholds: dict[str, dict[str, Any]],
    pred_probs: np.ndarray,
    unlabeled: np.ndarray,
    classes: list[str],
    *,
    target_accuracy: float,
) -> dict[str, dict[str, Any]]:
    """The thresholds with a provisional one for each class no evidence certifies.

    pred_probs: (n, k); unlabeled: (n,) bool, the items that get machine labels. A probed class's
    entry gets ``basis: "probe"``, ``threshold`` (the lowest confidence in its region),
    ``probe_size`` and ``region``; the others are returned as they are."""
    size = powered_size(target_accuracy)
    predicted = pred_probs.argmax(axis=1)
    confidence = pred_probs.max(axis=1)
    out = {name: dict(entry) for name, entry in thresholds.items()}
    for code, name in enumerate(classes):
        if math.isfinite(out[name]["threshold"]):
            continue
        mine = np.sort(confidence[unlabeled & (predicted == code)])[::-1]
        if len(mine) < 2 * size:
            continue
        region = min(len(mine), PROBE_REGION * size)
        out[name].update(basis="probe", threshold=float(mine[region - 1]), probe_size=size, region=region)
    return out


def probe_sizes(thresholds: dict[str, dict[str, Any]]) -> dict[str, int]:
    """class -> how many of its provisional machine labels people check."""
    return {name: int(e["probe_size"]) for name, e in thresholds.items() if e.get("basis") == "probe"}


def verify_probes(
    before: pd.DataFrame,
    after: pd.DataFrame,
    probed: list[str],
    answers: pd.DataFrame,
    thresholds: dict[str, dict[str, Any]],
    *,
    target_accuracy: float,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], list[str]]:
    """Certify each probed class's threshold on people's answers to its probe.

    before: the rows as decided (machine label in ``label``, ``confidence``, ``predicted_label``);
    after: the same after the review round; probed: the ids routed as ``probe``; answers:
    people's answers. A probed machine label is right when it is among the answers people gave
    most often (:func:`tasks.consensus.plurality_answers`). The certified threshold is never
    below the provisional one. Returns ``(rows, thresholds, demoted_ids)``: provisional machine
    labels under the certified threshold become ``needs_review`` with the reason."""
    prior = before.set_index("item_id")
    now = after.set_index("item_id", drop=False).copy()
    said = plurality_answers(answers[answers["item_id"].isin(set(probed))]) if len(answers) else {}
    out = {name: dict(entry) for name, entry in thresholds.items()}
    demoted: list[str] = []
    for name, entry in out.items():
        if entry.get("basis") != "probe":
            continue
        mine = [i for i in probed if prior.at[i, "predicted_label"] == name and i in said]
        right = np.array([prior.at[i, "label"] in said[i] for i in mine], dtype=bool)
        confidence = prior.loc[mine, "confidence"].to_numpy(dtype=float)
        certified = lowest_certified(confidence, right, target_accuracy)
        provisional = entry.get("provisional_threshold", entry["threshold"])
        final = max(certified["threshold"], provisional)
        entry.update(
            provisional_threshold=provisional,
            threshold=final,
            probe_checked=len(mine),
            probe_correct=int(right.sum()),
            accuracy=certified["accuracy"],
            accuracy_lower=certified["accuracy_lower"],
        )
        waiting = _provisional_under(now, name, final)
        bar = "certified nothing" if not math.isfinite(final) else f"certified only p >= {final:.3f}"
        now.loc[waiting, "status"] = "needs_review"
        now.loc[waiting, "reason"] = now.loc[waiting, "reason"] + (
            f"; not accepted: people's answers to a probe of {len(mine)} of the model's most confident "
            f"{name!r} labels ({int(right.sum())} right) {bar} at {target_accuracy:.0%}"
        )
        under = _provisional_under(prior, name, final) & ~prior.index.isin(probed)
        entry["probe_demoted"] = int(under.sum())  # answered by people in a second round or not
        demoted += now.loc[waiting, "item_id"].tolist()
    return now.reset_index(drop=True), out, demoted


def _provisional_under(rows: pd.DataFrame, name: str, threshold: float) -> pd.Series:
    """Accepted machine labels of class ``name`` under ``threshold``."""
    return (
        (rows["source"] == "model")
        & (rows["status"] == "accepted")
        & (rows["label"] == name)
        & (rows["confidence"].astype(float) < threshold)
    )


# -- Prefect tasks --------------------------------------------------------------------------


@task(name="probe", cache_policy=NO_CACHE, on_completion=[stage_finished])
def probe(
    spec: LabelingJobSpec, dataset: Dataset, pred_probs: np.ndarray, thresholds: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """:func:`probe_thresholds` when people review (``review.probe``); else the thresholds as
    they are."""
    if spec.review.mode != "labelstudio" or not spec.review.probe:
        return thresholds
    return probe_thresholds(
        thresholds,
        pred_probs,
        dataset.training_labels == UNLABELED,  # learned items are people's already
        dataset.classes,
        target_accuracy=spec.autolabel.target_accuracy,
    )


@task(name="verify_probes", cache_policy=NO_CACHE)
def check_probes(
    spec: LabelingJobSpec,
    before: pd.DataFrame,
    after: pd.DataFrame,
    people: Any,
    thresholds: dict[str, dict[str, Any]],
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], list[str]]:
    """:func:`verify_probes` on the review round's answers."""
    if not probe_sizes(thresholds):
        return after, thresholds, []
    routed = people.routed
    probed = routed.loc[routed["route"] == "probe", "item_id"].tolist()
    return verify_probes(
        before,
        after,
        probed,
        people.annotations,
        thresholds,
        target_accuracy=spec.autolabel.target_accuracy,
    )
