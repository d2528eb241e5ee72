"""consensus: fold several people's answers into one label per item, and score the people.

``consensus_labels`` uses cleanlab's CROWDLAB (``cleanlab.multiannotator``) when model
probabilities are given, and majority vote (the named fallback) when not. CROWDLAB weighs the
model against the annotators, so its label can side with the model against agreeing people.
That rescues items where weak annotators share a confusion (``bench/consensus_quality.py``:
letting any strict human majority win gave 0.93 for CROWDLAB's 0.99 on digits with 3 answers
per item), and it also overrides people who are right (``bench/labeling_cost.py``: 0.987 for
0.997 on digits, 0.965 for 0.986 on the review-vs-plot texts). The middle: people outvote the
model when their most frequent answer leads by :data:`PEOPLE_MARGIN` (2) answers or more (2-0,
3-1), and CROWDLAB decides the rest. Either way the consensus has the model in it, so it cannot
judge the model.
``plurality_answers`` is people's verdict alone: what checks of the model (``tasks.gate``, the
audit estimate) compare machine labels with; ``unsettled_checks`` lists the checked machine labels
on which that verdict hangs on one person's answer, for one more person to look.
``annotator_scores`` rates each annotator by agreement with consensus and, where gold items exist,
by accuracy on them.
``needs_another_annotator`` ranks items by cleanlab's active-learning scores.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
from cleanlab.multiannotator import (
    get_active_learning_scores,
    get_label_quality_multiannotator,
)

from labelgate.errors import DataError

PEOPLE_MARGIN = 2
"""People outvote the model when the answers given most often outnumber the next ones by this
many (2-0, 3-1, 3-0): CROWDLAB's label stands otherwise (single answers, 2-1, ties)."""


def annotation_matrix(annotations: pd.DataFrame, item_ids: list[str], classes: list[str]) -> pd.DataFrame:
    """Items x annotators matrix of class codes (NaN = not annotated).

    annotations: rows with ``item_id``, ``annotator``, ``label`` (class name); only rows whose
    label is in ``classes`` count (skipped, empty and out-of-schema answers are left out). When an
    annotator answered an item twice, the latest row wins.
    """
    codes = {c: i for i, c in enumerate(classes)}
    usable = annotations[annotations["label"].isin(codes)]
    usable = usable.drop_duplicates(["item_id", "annotator"], keep="last")
    matrix = usable.pivot(index="item_id", columns="annotator", values="label")
    matrix = matrix.reindex(index=item_ids).apply(lambda col: col.map(codes)).astype(float)
    return matrix


def plurality_answers(annotations: pd.DataFrame) -> dict[str, set[str]]:
    """Per item, the labels people gave most often (several when tied), with no model involved.

    annotations: rows with ``item_id``, ``annotator``, ``label``; rows with a ``status`` other than
    ``ok`` (skipped, empty, out of schema) do not count; an annotator's latest answer wins.
    """
    counts = _answer_counts(annotations)
    if counts.empty:
        return {}
    top = counts.groupby(level=0).transform("max")
    winners = counts[counts == top].reset_index()
    return {item: set(labels) for item, labels in winners.groupby("item_id")["label"]}


def _answer_counts(annotations: pd.DataFrame) -> pd.Series:
    """Answers per (item_id, label): ``ok`` rows only, an annotator's latest answer wins."""
    usable = annotations
    if "status" in usable.columns:
        usable = usable[usable["status"] == "ok"]
    usable = usable.dropna(subset=["label"]).drop_duplicates(["item_id", "annotator"], keep="last")
    return usable.groupby(["item_id", "label"]).size()


ASSUMED_LABELER_ACCURACY = 0.9
"""What :func:`settling_margin` assumes of people when the spec does not set the margin."""


def settling_margin(
    target_accuracy: float, n_classes: int, *, labeler_accuracy: float = ASSUMED_LABELER_ACCURACY
) -> int:
    """The smallest margin at which people's verdict against a right machine label, ``m``
    coinciding slips of labelers right ``labeler_accuracy`` of the time with wrong answers spread
    over the other classes, happens less often than a fifth of how often the target allows
    machine labels to be wrong: a check must not be noisier than what it checks (0.99 on 2
    classes: 3, on 10: 2; 0.95 on 2: 3, since two slips in a row, 1 in 100, are exactly a fifth
    of 5%, and a check that noisy made the thresholds' first test fail in the labeling-cost
    benchmark)."""
    slip, bound = 1 - labeler_accuracy, (1 - target_accuracy) / 5
    for margin in range(1, 11):
        if slip**margin / max(n_classes - 1, 1) ** (margin - 1) < bound * (1 - 1e-9):
            return margin
    return 10


ASSUMED_ANSWER_ACCURACY = 0.85
"""What :func:`unsure_labels` assumes of each answer: the low end of a team's range (the
labeling-cost benchmark's bots answer 85-95% right)."""


def unsure_labels(
    annotations: pd.DataFrame,
    prior: dict[str, np.ndarray],
    classes: list[str],
    *,
    target_accuracy: float,
    answer_accuracy: float = ASSUMED_ANSWER_ACCURACY,
) -> list[str]:
    """Items people label whose most likely class is not yet as sure as the target: one more
    person each.

    prior: item_id -> the model's (k,) probabilities. The posterior of each class takes them as
    the prior and each answer as right with probability ``answer_accuracy``, wrong ones spread
    evenly over the other classes. An item is settled when its most likely class reaches the
    target and is among people's most frequent answers (a sure model never outweighs them). One
    answer agreeing with a sure model settles an item; one agreeing with an unsure model does not
    (with one answer settling every item, people's labels below the threshold were 0.949 right
    in ``bench/labeling_cost.py``). Items nobody answered yet are not listed."""
    counts = _answer_counts(annotations)
    if counts.empty:
        return []
    k, code = len(classes), {c: i for i, c in enumerate(classes)}
    right, wrong = np.log(answer_accuracy), np.log((1 - answer_accuracy) / max(k - 1, 1))
    answered = set(counts.index.get_level_values(0))
    out = []
    for item, probs in prior.items():
        if item not in answered:
            continue
        votes = np.zeros(k)
        for label, n in counts.loc[item].items():
            if label in code:
                votes[code[label]] += n
        prior_log = np.log(np.clip(np.asarray(probs, dtype=float), 1e-3, None))
        log_post = prior_log + votes * right + (votes.sum() - votes) * wrong
        post = np.exp(log_post - log_post.max())
        best = int(post.argmax())
        # settled when the most likely class is as sure as the target and is also people's most
        # frequent answer: a sure model never outweighs the people who answered
        if post[best] / post.sum() < target_accuracy or votes[best] < votes.max():
            out.append(item)
    return out


def unsettled_checks(
    annotations: pd.DataFrame, machine_labels: dict[str, str], *, margin: int = PEOPLE_MARGIN
) -> list[str]:
    """Checked machine labels on which people's verdict is not settled yet: each needs one more
    person (adjudication).

    machine_labels: item_id -> the machine label people were asked to check. People's verdict is
    :func:`plurality_answers`'s: the machine label is right once it is among the answers given
    most often, and that settles it; it is wrong once another answer leads it by ``margin``. In
    between (one answer against it, 2-1 against) a single person's slip would count as the
    model's error, and with a 90% labeler that alone puts a perfect model at 0.9. Items nobody
    answered yet are not listed (they wait for their first answer)."""
    counts = _answer_counts(annotations)
    if counts.empty:
        return []
    out = []
    answered = set(counts.index.get_level_values(0))
    for item, machine in machine_labels.items():
        if item not in answered:
            continue
        votes = counts.loc[item]
        for_machine = int(votes.get(machine, 0))
        others = votes.drop(machine, errors="ignore")
        against = int(others.max()) if len(others) else 0
        if (for_machine and for_machine >= against) or against - for_machine >= margin:
            continue
        out.append(item)
    return out


def _vote_counts(votes: np.ndarray, k: int) -> np.ndarray:
    """(items, k) answers per class from an items x annotators array of codes (NaN: none)."""
    return np.stack([(votes == c).sum(axis=1) for c in range(k)], axis=1)


def majority_vote(sub: pd.DataFrame, k: int) -> np.ndarray:
    """Class codes by majority vote over an items x annotators matrix (:func:`annotation_matrix`,
    every row answered).

    Ties go, as in cleanlab's ``get_majority_vote_label``, to the tied answer of the annotator who
    agrees most with the untied items; where that does not decide, to the first tied class in
    the schema. cleanlab breaks those last ties at random (unseeded), so a rerun could relabel,
    and it fails outright when every item is tied; this is the same vote, deterministic.
    """
    votes = sub.to_numpy()
    counts = _vote_counts(votes, k)
    top = counts.max(axis=1)
    codes = counts.argmax(axis=1)
    tied = np.flatnonzero((counts == top[:, None]).sum(axis=1) > 1)
    clear = np.setdiff1d(np.arange(len(codes)), tied)
    if not len(tied) or not len(clear):
        return codes
    answered = ~np.isnan(votes[clear])
    hits = (votes[clear] == codes[clear, None]) & answered
    agreement = np.where(
        answered.sum(axis=0) > 0, hits.sum(axis=0) / np.maximum(answered.sum(axis=0), 1), -1.0
    )
    for i in tied:
        candidates = np.flatnonzero(counts[i] == top[i])
        who = [(agreement[j], -int(votes[i, j])) for j in range(votes.shape[1]) if votes[i, j] in candidates]
        codes[i] = -max(who)[1]  # the most agreeing annotator's answer; then the first class
    return codes


@contextlib.contextmanager
def _ties_broken_the_same_way(seed: int = 0):
    """cleanlab breaks CROWDLAB's last majority-vote ties (after the model's probabilities) with
    the global ``np.random``, unseeded; seed it for the call, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _people_lead(sub: pd.DataFrame, k: int, codes, agreement, quality):
    """Where people's most frequent answer leads the next by :data:`PEOPLE_MARGIN` or more, it is
    the label (its agreement and quality: the share of answers that gave it, as majority vote
    scores); elsewhere CROWDLAB's stays. Returns the new codes, agreement, quality and how many
    items changed."""
    counts = _vote_counts(sub.to_numpy(), k)
    ranked = np.sort(counts, axis=1)
    lead = ranked[:, -1] - (ranked[:, -2] if k >= 2 else 0)
    majority = counts.argmax(axis=1)
    change = (lead >= PEOPLE_MARGIN) & (majority != codes)
    share = ranked[:, -1] / np.maximum(counts.sum(axis=1), 1)
    return (
        np.where(change, majority, codes),
        np.where(change, share, agreement),
        np.where(change, share, quality),
        int(change.sum()),
    )


def consensus_labels(
    annotations: pd.DataFrame,
    item_ids: list[str],
    classes: list[str],
    *,
    pred_probs: np.ndarray | None = None,
) -> pd.DataFrame:
    """One consensus label per item.

    pred_probs: (len(item_ids), k) model probabilities for the same items, or None.
    Returns columns ``item_id, label, quality, agreement, n_annotations, method`` (label None for
    items nobody answered usably). With CROWDLAB, people's most frequent answer wins where it
    leads by :data:`PEOPLE_MARGIN` answers or more; ``attrs["model_overruled"]`` counts the items
    where CROWDLAB had chosen otherwise.
    """
    matrix = annotation_matrix(annotations, item_ids, classes)
    answered = matrix.notna().any(axis=1).to_numpy()
    out = pd.DataFrame(
        {
            "item_id": item_ids,
            "label": None,
            "quality": np.nan,
            "agreement": np.nan,
            "n_annotations": matrix.notna().sum(axis=1).to_numpy(),
            "method": None,
        }
    )
    if not answered.any():
        return out
    sub = matrix[answered]
    # CROWDLAB needs at least one item with 2+ annotators and all classes representable
    multi = (sub.notna().sum(axis=1) >= 2).any()
    if pred_probs is not None and multi and sub.shape[1] >= 2:
        with warnings.catch_warnings(), _ties_broken_the_same_way():
            warnings.simplefilter("ignore", UserWarning)  # "annotators do not agree on any example"
            result = get_label_quality_multiannotator(
                sub.reset_index(drop=True),
                np.asarray(pred_probs)[answered],
                verbose=False,
                return_detailed_quality=False,
                return_annotator_stats=False,
            )["label_quality"]
        codes = result["consensus_label"].to_numpy(dtype=int)
        quality = result["consensus_quality_score"].to_numpy()
        agreement = result["annotator_agreement"].to_numpy()
        method = "crowdlab"
        codes, agreement, quality, overruled = _people_lead(sub, len(classes), codes, agreement, quality)
        out.attrs["model_overruled"] = overruled
    else:
        codes = majority_vote(sub, len(classes))
        votes = sub.to_numpy()
        agreement = np.nanmean(votes == codes[:, None], axis=1, where=~np.isnan(votes))
        quality = agreement
        method = "majority_vote"
    out.loc[answered, "label"] = np.asarray(classes, dtype=object)[codes]
    out.loc[answered, "quality"] = quality
    out.loc[answered, "agreement"] = agreement
    out.loc[answered, "method"] = method
    return out


def annotator_scores(
    annotations: pd.DataFrame, consensus: pd.DataFrame, *, gold: dict[str, str] | None = None
) -> pd.DataFrame:
    """Per annotator: answers, agreement with consensus, and accuracy on gold items.

    Returns columns ``annotator, answers, agreement_with_consensus, gold_answers, gold_accuracy``.
    """
    if annotations.empty:
        return pd.DataFrame(
            columns=["annotator", "answers", "agreement_with_consensus", "gold_answers", "gold_accuracy"]
        )
    merged = annotations.merge(
        consensus[["item_id", "label"]].rename(columns={"label": "consensus"}), on="item_id", how="left"
    )
    merged["agrees"] = merged["label"] == merged["consensus"]
    merged["gold"] = merged["item_id"].map(gold or {})
    merged["gold_hit"] = merged["label"] == merged["gold"]
    rows = []
    for annotator, group in merged.groupby("annotator"):
        on_gold = group[group["gold"].notna()]
        rows.append(
            {
                "annotator": annotator,
                "answers": len(group),
                "agreement_with_consensus": float(group["agrees"].mean()),
                "gold_answers": len(on_gold),
                "gold_accuracy": float(on_gold["gold_hit"].mean()) if len(on_gold) else np.nan,
            }
        )
    return pd.DataFrame(rows).sort_values("annotator").reset_index(drop=True)


def needs_another_annotator(
    annotations: pd.DataFrame,
    item_ids: list[str],
    classes: list[str],
    pred_probs: np.ndarray,
    *,
    budget: int,
    min_quality: float = 0.0,
) -> list[str]:
    """The ``budget`` items whose labels would gain most from one more annotation.

    Ranks by cleanlab's ``get_active_learning_scores`` (lowest = least certain); items with no
    usable answer come first. Items whose score is at least ``1 - min_quality`` are never chosen
    (with the default 0 every item is a candidate).
    """
    if budget <= 0:
        return []
    matrix = annotation_matrix(annotations, item_ids, classes)
    answered = matrix.notna().any(axis=1).to_numpy()
    scores = np.full(len(item_ids), -1.0)  # unanswered first
    if answered.any():
        sub = matrix[answered].reset_index(drop=True)
        try:
            with warnings.catch_warnings():  # "annotators do not agree on any example": one answer each
                warnings.simplefilter("ignore", UserWarning)
                scores[answered], _ = get_active_learning_scores(sub, np.asarray(pred_probs)[answered])
        except ValueError as exc:
            raise DataError(f"cannot score items for another annotation: {exc}") from None
    order = np.argsort(scores, kind="stable")
    chosen = [item_ids[i] for i in order if scores[i] < 1 - min_quality]
    return chosen[:budget]
