"""gate: per-class confidence thresholds for accepting machine labels.

A machine label of class c is accepted only when the model's probability reaches ``threshold[c]``,
the lowest threshold at which the one-sided 95% lower bound on the accuracy of predictions of c
(exact, Clopper-Pearson: :func:`accuracy_lower_bound`) still reaches the target.

The evidence is the out-of-sample predictions on every item that came with a label, scored
against that given label, except labels the file says a model made (``dataset.label_source_column``;
an exported labelgate label set says so in its ``source`` column): a model cannot vouch for machine
labels, its own or another's. Given labels that passed the audit cannot serve: the audit passes
exactly the items whose prediction agrees with them, so they would certify anything. Scoring
against all given labels, noise included, understates the model's accuracy when the given labels
are noisy: the gate then accepts fewer machine labels, never more. Human answers (review mode)
are the better evidence; the report and the lineage say which was used. Gold answers
(``review.gold_path``) are evidence too, scored against the known answer: on an unlabeled gold
item the model never saw it, so its prediction is out of sample as well.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from scipy.stats import beta

from labelgate.errors import GateError
from labelgate.progress import stage_finished
from labelgate.spec import LabelingJobSpec
from tasks.consensus import plurality_answers
from tasks.ingest import Dataset

Z_95 = 1.959963984540054

#: Confidence of every accuracy bound the gate states ("at least the target, with 95% confidence").
CONFIDENCE = 0.95


def accuracy_lower_bound(
    correct: np.ndarray | float, total: np.ndarray | float, *, confidence: float = CONFIDENCE
):
    """One-sided lower confidence bound on an accuracy seen as ``correct`` right of ``total``
    (0 where total or correct is 0).

    Exact (Clopper-Pearson): the true accuracy lies under it with probability at most
    ``1 - confidence``, whatever the accuracy, so "the bound reaches the target" is a one-sided
    test at that level. With every answer right it is ``(1 - confidence) ** (1 / total)``: 0.99
    at 95% takes 299 right of 299 (:func:`labels_needed`). Until 2026-12-01 the gate used the
    lower end of a two-sided 95% Wilson interval, a 97.5% one-sided bound in effect (0.99 took
    381 of 381), and an approximation whose coverage is not guaranteed.
    """
    correct = np.rint(np.asarray(correct, dtype=float))
    total = np.asarray(total, dtype=float)
    usable = (total > 0) & (correct > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wrong = np.where(usable, total - correct, 0)
        lower = beta.ppf(1 - confidence, np.where(usable, correct, 1), wrong + 1)
    return np.where(usable, lower, 0.0)


def threshold_curve(confidence: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage and accuracy of accepting predictions with confidence >= t, for every t.

    confidence: (m,) floats; correct: (m,) bools. Returns arrays sorted by descending threshold:
    ``threshold``, ``coverage`` (share accepted), ``accuracy`` and ``accepted`` (how many).
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
        "accepted": total[cut],
        "right": hits[cut],
    }


#: Ratio between consecutive accepted-set sizes tested by :func:`lowest_certified`.
GRID_STEP = 1.1


def powered_size(target: float) -> int:
    """The size at which a set whose accuracy lies halfway between the target and 1 passes a
    normal-approximation bound at z = 1.96 (0.95: 150 items; 0.98: 380; 0.99: 764): where the
    fixed sequence starts, so that one early error does not end the scan. A sample size of the
    design, not a test: :func:`accuracy_lower_bound` tests."""
    middle = (1 + target) / 2
    return math.ceil(Z_95 * Z_95 * middle * (1 - middle) / (middle - target) ** 2)


def _first_size(target: float, available: int) -> int:
    """Where the fixed sequence starts: :func:`powered_size`, but never past half of the
    evidence (0.99 is powered at 764 items: with 900, starting there would make 85% of them
    pass at once), and never under the smallest size that can pass at all
    (:func:`labels_needed`). It depends on the number of items only, never on the answers."""
    return min(powered_size(target), max(labels_needed(target), available // 2))


def lowest_certified(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict[str, float]:
    """The lowest threshold certified by fixed-sequence testing.

    Scanning every threshold and keeping the lowest whose bound passes is a
    multiple-comparison trap: among hundreds of tries, one passes by luck (on 10 classes with 5%
    errors at every confidence, something was certified in 16 of 100 trials; this way, in 2:
    ``tests/unit/test_gate.py``). Here the thresholds are
    tested in a fixed order instead, from the most confident accepted set that could pass at all
    (:func:`_first_size`) down through sets growing by :data:`GRID_STEP`, and the scan stops at
    the first failure (Learn-then-Test, fixed-sequence procedure: the family-wise error stays at
    the single test's level). The order depends on the confidences only, never on the answers.
    """
    entry = {"threshold": math.inf, "coverage": 0.0, "accuracy": float("nan"), "accuracy_lower": float("nan")}
    if not len(confidence):
        return entry
    curve = threshold_curve(confidence, correct)
    counts = curve["accepted"]
    size = float(_first_size(target, len(confidence)))
    tested: list[int] = []
    while True:
        i = int(np.searchsorted(counts, size))  # first accepted set with at least `size` items
        if i >= len(counts):
            break
        if not tested or i > tested[-1]:
            tested.append(i)
        size = max(size * GRID_STEP, size + 1)
    passed, passed_lower = None, float("nan")
    for i in tested:  # the bound only where it is tested: exact bounds cost microseconds each
        lower = float(accuracy_lower_bound(curve["right"][i], counts[i]))
        if lower < target:
            break
        passed, passed_lower = i, lower
    if passed is not None:
        entry.update({key: float(curve[key][passed]) for key in ("threshold", "coverage", "accuracy")})
        entry["accuracy_lower"] = passed_lower
    return entry


def tune_thresholds(
    pred_probs: np.ndarray,
    labels: np.ndarray,
    *,
    target_accuracy: float,
    classes: list[str],
    allow_pooled: bool = True,
) -> dict[str, dict[str, float]]:
    """Choose a threshold per class.

    pred_probs: (n, k) out-of-sample probabilities; labels: (n,) trusted class codes.
    Returns ``{class: {"threshold", "support", "coverage", "accuracy", "accuracy_lower", "basis"}}``.

    A class's own predictions decide its threshold when they can certify the target (tested
    each at the 95% level: a Bonferroni share per class was measured to cost much coverage and
    to prevent no miss in ``bench/validation.py``). A class with too little evidence falls
    back to the threshold certified on all classes pooled (``basis: "pooled"``), which bounds the
    accuracy over all accepted machine labels rather than per class. Where neither certifies the
    target the threshold is ``inf``: none of that class's machine labels is accepted.
    ``allow_pooled=False`` turns the pooled fallback off (the flow does so when the data drifted
    from the previous version: evidence borrowed across classes is then least trustworthy).
    """
    predicted = pred_probs.argmax(axis=1)
    confidence = pred_probs.max(axis=1)
    pooled = lowest_certified(confidence, labels == predicted, target_accuracy)
    out: dict[str, dict[str, float]] = {}
    for code, name in enumerate(classes):
        mask = predicted == code
        own = lowest_certified(confidence[mask], labels[mask] == code, target_accuracy)
        if math.isfinite(own["threshold"]) or not math.isfinite(pooled["threshold"]) or not allow_pooled:
            entry = {**own, "basis": "class"}
        else:
            chosen = confidence[mask] >= pooled["threshold"]
            hits = int((labels[mask][chosen] == code).sum())
            entry = {
                "threshold": pooled["threshold"],
                "coverage": float(chosen.mean()) if mask.any() else 0.0,
                "accuracy": hits / chosen.sum() if chosen.any() else float("nan"),
                "accuracy_lower": float(accuracy_lower_bound(hits, int(chosen.sum()))),
                "basis": "pooled",
            }
        entry["support"] = int(mask.sum())
        out[name] = entry
    return out


# -- Prefect task ---------------------------------------------------------------------------


@task(name="gate", cache_policy=NO_CACHE, on_completion=[stage_finished])
def gate(
    spec: LabelingJobSpec, dataset: Dataset, pred_probs: np.ndarray, *, allow_pooled: bool = True
) -> dict[str, dict[str, float]]:
    """Tune per-class thresholds against every given label not made by a model and every gold
    answer (see the module docstring)."""
    labeled = dataset.evidence
    return tune_thresholds(
        pred_probs[labeled],
        dataset.evidence_labels[labeled],
        target_accuracy=spec.autolabel.target_accuracy,
        classes=dataset.classes,
        allow_pooled=allow_pooled,
    )


@task(name="machine_label_gate", cache_policy=NO_CACHE, on_completion=[stage_finished])
def machine_label_gate(
    spec: LabelingJobSpec,
    before: pd.DataFrame,
    after: pd.DataFrame,
    people: Any | None,
    *,
    sent_to_people: int = 0,
    evidence: tuple[np.ndarray, np.ndarray] | None = None,
    probed: Collection[str] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`verify_machine_labels` on the review round's audit sample; raises
    :class:`GateError` when they miss the target and ``validation.low_machine_accuracy: stop``.

    sent_to_people: how many demoted machine labels the flow already sent to people in a second
    review round (the gate then runs again on the answers: only the unanswered stay demoted).
    evidence: the thresholds' evidence (:func:`tuning_evidence`), pooled with the audit sample
    to raise the threshold; None when the data drifted (the labeled items then say least about
    the new ones). probed: classes whose machine labels their probe verified (``tasks/probe.py``):
    left out here, as the audit sample leaves them out."""
    audited = set()
    if people is not None:
        routed = people.routed
        audited = set(routed.loc[routed["route"] == "audit_sample", "item_id"])
    rows, verdict = verify_machine_labels(
        before,
        after,
        audited,
        target_accuracy=spec.autolabel.target_accuracy,
        answers=people.annotations if people is not None else NO_ANSWERS,
        evidence=evidence,
        probed=probed,
    )
    verdict["action"] = spec.validation.low_machine_accuracy
    if sent_to_people:
        verdict["sent_to_people"] = sent_to_people
        verdict["why"] += (
            f"; {sent_to_people} machine label(s) under the raised threshold were sent to people "
            "in a second review round of this run"
        )
    if verdict["status"] == "below_target" and spec.validation.low_machine_accuracy == "stop":
        raise GateError(f"label set {spec.output.label_set!r}: {verdict['why']}; nothing was published")
    if verdict["status"] == "below_target":
        get_run_logger().warning("machine-label gate: %s", verdict["why"])
    return rows, verdict


#: What :func:`labels_needed` answers for a target of 1.0, which no finite sample certifies.
NEVER_ENOUGH = 100_000


def labels_needed(target_accuracy: float) -> int:
    """The fewest checked labels, all of them right, whose 95% lower bound
    (:func:`accuracy_lower_bound`) reaches ``target_accuracy`` (0.98 needs 149, 0.99 needs 299):
    a floor on the audit sample that can verify it. With n of n right the bound is
    ``(1 - CONFIDENCE) ** (1 / n)``, so n is the smallest with ``n >= log(1 - CONFIDENCE) /
    log(target)``. No number of checks certifies 1.0: that returns :data:`NEVER_ENOUGH`."""
    if target_accuracy >= 1:
        return NEVER_ENOUGH
    n = max(1, math.ceil(math.log(1 - CONFIDENCE) / math.log(target_accuracy)))
    while float(accuracy_lower_bound(n, n)) < target_accuracy:  # rounding in the last digit
        n += 1
    return n


NO_ANSWERS = pd.DataFrame(columns=["item_id", "annotator", "label"])
"""No review round: nobody answered."""

UNCHECKED = "no person checked a sample of the auto-accepted machine labels: their accuracy is unverified"
NOTHING_TO_CHECK = (
    "no machine label was auto-accepted (none passed its class threshold, or people answered them "
    "all): there is nothing to verify"
)


def verify_machine_labels(
    before: pd.DataFrame,
    after: pd.DataFrame,
    audited: set[str] | frozenset[str],
    *,
    target_accuracy: float,
    answers: pd.DataFrame,
    evidence: tuple[np.ndarray, np.ndarray] | None = None,
    probed: Collection[str] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The autolabel quality gate: are the auto-accepted machine labels as good as the target?

    probed: classes whose machine labels a probe verified (``tasks/probe.py``); they are left
    out here (the audit sample is drawn from the others) and returned unchanged.

    before: the rows as decided before people answered (machine label in ``label``, with
    ``confidence``); after: the same items after the review round (``source`` is ``human`` where
    people answered); audited: ids of the random audit sample of auto-accepted machine labels.

    answers: people's individual answers (``item_id, annotator, label[, status]``).

    The accuracy is estimated on the audited items people answered: a machine label counts as
    right when it is among the labels people gave most often for that item
    (:func:`tasks.consensus.plurality_answers`), so people alone judge the model. The consensus
    label in ``after`` cannot serve: CROWDLAB weighs in the model's own probabilities.
    Outcomes (``status`` of the returned verdict):

    - ``unverified``: nobody checked a sample (review mode none, or audit share 0); the rows are
      returned unchanged and the verdict says so;
    - ``verified``: the 95% lower bound (:func:`accuracy_lower_bound`) reaches the target;
    - ``below_target``: it does not. The threshold is raised to the lowest confidence at which
      the audited machine labels at or above it certify the target (``inf`` when none does), and
      auto-accepted machine labels under it become ``needs_review``: kept with their reason,
      out of the accepted view; with review the flow sends them to people in a second review
      round of the same run (``flows/labeling_job.py``). With ``evidence`` (the thresholds'
      evidence: ``(confidence, right)`` of out-of-sample predictions on labeled items), the
      raised threshold is the lowest that the audit sample and that evidence certify together:
      the audit alone, at its smallest, certifies a high target only with no wrong answer at all
      (0.99: 299 of 299), so one error would send every machine label to people.

    Returns ``(rows, verdict)``; verdict has ``status, checked, correct, estimate, lower_95,
    target, needed, raised_threshold, demoted, why`` (and ``demoted_ids`` when below target, for
    the flow to send those items to people; it does not go into the lineage).
    """
    if probed:
        by_probe = (after["source"] == "model") & after["predicted_label"].isin(list(probed))
        rows, verdict = verify_machine_labels(
            before[~((before["source"] == "model") & before["predicted_label"].isin(list(probed)))],
            after[~by_probe],
            audited,
            target_accuracy=target_accuracy,
            answers=answers,
            evidence=evidence,
        )
        verdict["probed_classes"] = sorted(probed)
        verdict["why"] += (
            f" (the machine labels of {', '.join(map(repr, sorted(probed)))} were verified by their "
            "probes instead: see the thresholds)"
        )
        return pd.concat([rows, after[by_probe]], ignore_index=True), verdict
    prior = before.set_index("item_id")
    now = after.set_index("item_id", drop=False)
    answered = [i for i in audited if i in now.index and now.at[i, "source"] == "human"]
    machine_ok = (now["source"] == "model") & (now["status"] == "accepted")
    verdict: dict[str, Any] = {
        "target": target_accuracy,
        "checked": len(answered),
        "needed": labels_needed(target_accuracy),
        "machine_accepted": int(machine_ok.sum()),
        "raised_threshold": None,
        "demoted": 0,
    }
    if not answered:
        verdict.update(
            status="unverified",
            correct=0,
            estimate=None,
            lower_95=None,
            why=UNCHECKED if machine_ok.any() else NOTHING_TO_CHECK,
        )
        return after, verdict
    said = plurality_answers(answers[answers["item_id"].isin(set(answered))])
    right = np.array([prior.at[i, "label"] in said.get(i, ()) for i in answered])
    confidence = prior.loc[answered, "confidence"].to_numpy(dtype=float)
    correct = int(right.sum())
    lower = float(accuracy_lower_bound(correct, len(answered)))
    verdict.update(correct=correct, estimate=correct / len(answered), lower_95=lower)
    if lower >= target_accuracy:
        verdict.update(
            status="verified",
            why=f"people checked {len(answered)} auto-accepted machine labels: {correct} right "
            f"(equal to people's most frequent answer), 95% lower bound {lower:.3f} "
            f">= target {target_accuracy}",
        )
        return after, verdict
    pooled = evidence is not None and len(evidence[0]) > 0
    scores, hits = confidence, right
    if pooled:
        scores = np.r_[scores, np.asarray(evidence[0], dtype=float)]
        hits = np.r_[hits, np.asarray(evidence[1], dtype=bool)]
    raised = lowest_certified(scores, hits, target_accuracy)["threshold"]
    demote = machine_ok & (now["confidence"].astype(float) < raised)
    rows = now.copy()
    rows.loc[demote, "status"] = "needs_review"
    bar = "no threshold certifies it" if not math.isfinite(raised) else f"threshold raised to {raised:.3f}"
    if pooled:
        bar += f" (on the audit sample and the thresholds' {len(evidence[0])} evidence labels together)"
    why = (
        f"people checked {len(answered)} auto-accepted machine labels: {correct} right (equal to "
        f"people's most frequent answer; estimate {correct / len(answered):.3f}, 95% lower bound {lower:.3f} "
        f"< target {target_accuracy}; "
        f"verifying the target takes at least {verdict['needed']} checked labels)"
    )
    rows.loc[demote, "reason"] = rows.loc[demote, "reason"] + f"; not accepted: {why}; {bar}"
    verdict.update(
        status="below_target",
        raised_threshold=raised,
        demoted=int(demote.sum()),
        demoted_ids=rows.loc[demote, "item_id"].tolist(),
        why=f"{why}; {bar}: {int(demote.sum())} machine label(s) moved to needs_review",
    )
    return rows.reset_index(drop=True), verdict


def tuning_evidence(dataset: Dataset, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the thresholds were tuned on, for the machine-label gate: ``(confidence, right)`` of
    the out-of-sample predictions on the labels that may serve as evidence (gold answers
    included)."""
    labeled = dataset.evidence
    probs = pred_probs[labeled]
    return probs.max(axis=1), probs.argmax(axis=1) == dataset.evidence_labels[labeled]


def threshold_curves(dataset: Dataset, pred_probs: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per-class coverage/accuracy curves against the given labels the thresholds were tuned on,
    for the report."""
    labeled = dataset.evidence
    probs, given = pred_probs[labeled], dataset.evidence_labels[labeled]
    predicted = probs.argmax(axis=1)
    return {
        name: threshold_curve(probs[predicted == c].max(axis=1), given[predicted == c] == c)
        for c, name in enumerate(dataset.classes)
    }
