"""Consensus quality: CROWDLAB (labelgate's consensus) vs majority vote vs Dawid-Skene.

Items get several answers from a simulated team of bots; each method folds them into one label
per item and scores the annotators. Reported per dataset and method, as the mean over seeds:

- consensus accuracy: share of items whose consensus label is the true label;
- Spearman correlation between the method's annotator quality scores and the bots' true
  accuracies (each bot's share of correct answers in that run), over the team.

Run from the repo root::

    .venv/bin/python -m bench.consensus_quality [--datasets digits,wine,rotten_tomatoes]
        [--seeds 0,1,2] [--per-item 2,3]

Team: 10 bots answering with ``labelgate.bots.BotLabeler.answer`` (the function the Label Studio
bots use), accuracies from 0.95 down to 0.60 in steps of about 0.04. The five weaker bots share a
systematic confusion (class ``c`` taken for ``c + 1 mod k``); the five stronger ones err
uniformly. Each item gets ``--per-item`` answers (one run per value) from distinct bots picked
at random (seeded).

Methods:

- ``crowdlab``: ``tasks.consensus.consensus_labels`` with model probabilities (cleanlab's
  CROWDLAB, labelgate's method). The probabilities are out-of-sample
  (``tasks.autolabel.out_of_sample_proba``, 5-fold) from models trained on the majority-vote
  labels, as cleanlab's multi-annotator workflow does. Annotator scores: cleanlab's
  ``annotator_quality``, and labelgate's ``annotator_scores`` (agreement with consensus).
- ``majority_vote``: ``consensus_labels`` without probabilities (labelgate's named fallback);
  scores: agreement with the majority label (``annotator_scores``).
- ``dawid_skene``: ``crowdkit.aggregation.DawidSkene`` (crowd-kit 1.4.2, the reference, EM
  with 100 iterations); scores: each bot's estimated accuracy, ``sum_c prior_c * P(answer c |
  true c)`` from its fitted confusion matrix.
- ``model_alone`` (context): the argmax of the same model probabilities, no answers used.

The table goes to stdout and ``bench/results/consensus_quality.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning

from bench.datasets import load_dataset
from bench.noise_detection import machine
from labelgate.bots import BotLabeler
from tasks.autolabel import out_of_sample_proba
from tasks.consensus import annotator_scores, consensus_labels

logger = logging.getLogger("bench.consensus_quality")

RESULTS = Path(__file__).parent / "results" / "consensus_quality.md"
TEAM = (0.95, 0.91, 0.87, 0.83, 0.79, 0.75, 0.71, 0.67, 0.64, 0.60)
"""True accuracies of the bots; the weaker half shares a systematic confusion."""
CONFUSED = (5, 6, 7, 8, 9)


def team(n_classes: int, seed: int) -> list[BotLabeler]:
    shift = {c: (c + 1) % n_classes for c in range(n_classes)}
    return [
        BotLabeler(
            f"bot{i + 1}@bench", accuracy=acc, confusion=shift if i in CONFUSED else None, seed=seed * 100 + i
        )
        for i, acc in enumerate(TEAM)
    ]


def simulate(
    y: np.ndarray, classes: list[str], *, per_item: int, seed: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Answers (``item_id, annotator, label``) and each bot's realized accuracy."""
    bots = team(len(classes), seed)
    rng = np.random.default_rng(seed)
    rows = []
    for i, truth in enumerate(y):
        for b in rng.choice(len(bots), size=per_item, replace=False):
            item = f"i{i}"
            rows.append((item, bots[b].email, bots[b].answer(item, classes[truth], classes), classes[truth]))
    frame = pd.DataFrame(rows, columns=["item_id", "annotator", "label", "truth"])
    accuracy = (frame["label"] == frame["truth"]).groupby(frame["annotator"]).mean().to_dict()
    return frame.drop(columns="truth"), accuracy


def dawid_skene(answers: pd.DataFrame, item_ids: list[str]) -> tuple[list, dict[str, float]]:
    from crowdkit.aggregation import DawidSkene

    ds = DawidSkene(n_iter=100).fit(answers.rename(columns={"item_id": "task", "annotator": "worker"}))
    labels = ds.labels_.reindex(item_ids).tolist()
    errors, priors = ds.errors_, ds.priors_
    quality = {}
    for worker in answers["annotator"].unique():
        quality[worker] = float(
            sum(
                priors[c] * errors.loc[(worker, c), c]
                for c in priors.index
                if (worker, c) in errors.index and c in errors.columns
            )
        )
    return labels, quality


def crowdlab_own_scores(answers: pd.DataFrame, item_ids: list[str], classes: list[str], probs) -> dict:
    """cleanlab's ``annotator_quality`` for the same CROWDLAB fit."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    from tasks.consensus import annotation_matrix

    matrix = annotation_matrix(answers, item_ids, classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = get_label_quality_multiannotator(
            matrix.reset_index(drop=True), probs, verbose=False, return_annotator_stats=True
        )["annotator_stats"]
    return stats["annotator_quality"].to_dict()


def rank_corr(scores: dict[str, float], truth: dict[str, float]) -> float:
    names = sorted(truth)
    return float(spearmanr([scores.get(n, np.nan) for n in names], [truth[n] for n in names]).statistic)


def evaluate(name: str, *, seed: int, per_item: int) -> list[dict]:
    X, y, kind, classes = load_dataset(name)
    item_ids = [f"i{i}" for i in range(len(y))]
    truth = np.asarray(classes, dtype=object)[y]
    answers, bot_accuracy = simulate(y, classes, per_item=per_item, seed=seed)
    rows = []

    def record(method: str, labels, own: dict | None, agreement: dict | None, seconds: float) -> None:
        rows.append(
            {
                "dataset": name,
                "per_item": per_item,
                "seed": seed,
                "method": method,
                "accuracy": float(np.mean(np.asarray(labels, dtype=object) == truth)),
                "spearman_own": rank_corr(own, bot_accuracy) if own else np.nan,
                "spearman_agreement": rank_corr(agreement, bot_accuracy) if agreement else np.nan,
                "seconds": seconds,
            }
        )

    start = time.perf_counter()
    vote = consensus_labels(answers, item_ids, classes)
    agree = annotator_scores(answers, vote).set_index("annotator")["agreement_with_consensus"].to_dict()
    record("majority_vote", vote["label"], agree, agree, time.perf_counter() - start)

    start = time.perf_counter()
    codes = pd.Series(vote["label"]).map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore", ConvergenceWarning)
        probs = out_of_sample_proba(X, codes, kind=kind, seed=seed, classes=len(classes))
    model_seconds = time.perf_counter() - start
    record("model_alone", np.asarray(classes, dtype=object)[probs.argmax(axis=1)], None, None, model_seconds)

    start = time.perf_counter()
    crowd = consensus_labels(answers, item_ids, classes, pred_probs=probs)
    if not (crowd["method"] == "crowdlab").all():
        raise RuntimeError(f"{name}: CROWDLAB did not run: {set(crowd['method'])}")
    seconds = time.perf_counter() - start + model_seconds
    agree = annotator_scores(answers, crowd).set_index("annotator")["agreement_with_consensus"].to_dict()
    own = crowdlab_own_scores(answers, item_ids, classes, probs)
    record("crowdlab", crowd["label"], own, agree, seconds)

    start = time.perf_counter()
    labels, own = dawid_skene(answers, item_ids)
    seconds = time.perf_counter() - start
    ds_frame = pd.DataFrame({"item_id": item_ids, "label": labels})
    agree = annotator_scores(answers, ds_frame).set_index("annotator")["agreement_with_consensus"].to_dict()
    record("dawid_skene", labels, own, agree, seconds)
    logger.info(
        "%s seed %d: %s",
        name,
        seed,
        ", ".join(f"{r['method']} {r['accuracy']:.4f}" for r in rows),
    )
    return rows


def report(results: pd.DataFrame, args: argparse.Namespace, *, started: dt.datetime) -> str:
    order = {"crowdlab": 0, "majority_vote": 1, "dawid_skene": 2, "model_alone": 3}
    grouped = (
        results.groupby(["dataset", "per_item", "method"], sort=False)
        .agg(
            accuracy=("accuracy", "mean"),
            accuracy_sd=("accuracy", "std"),
            spearman_own=("spearman_own", "mean"),
            spearman_agreement=("spearman_agreement", "mean"),
            seconds=("seconds", "mean"),
        )
        .reset_index()
    )
    grouped["order"] = grouped["method"].map(order)
    grouped = grouped.sort_values(["dataset", "per_item", "order"], kind="stable")
    sizes = {d: len(load_dataset(d)[1]) for d in grouped["dataset"].unique()}

    def fmt(value: float, digits: int = 3) -> str:
        return "–" if pd.isna(value) else f"{value:.{digits}f}"

    lines = [
        "# Consensus quality: CROWDLAB vs majority vote vs Dawid-Skene",
        "",
        f"- command: `python -m bench.consensus_quality --datasets {args.datasets} --seeds {args.seeds} "
        f"--per-item {args.per_item}` (repo root, `.venv/bin/python`)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- team: {len(TEAM)} bots (`labelgate.bots.BotLabeler.answer`), accuracies "
        f"{', '.join(str(a) for a in TEAM)}; the five weakest share a systematic confusion "
        "(class c answered as c+1 mod k), the others err uniformly; each item gets "
        "the number of answers in the column 'answers / item' from distinct bots picked at random (seeded)",
        "- crowdlab: `tasks.consensus.consensus_labels` with out-of-sample probabilities "
        "(`tasks.autolabel.out_of_sample_proba`, 5-fold ensemble) of models trained on the "
        "majority-vote labels; seconds include the models",
        "- majority_vote: `consensus_labels` without probabilities (labelgate's fallback)",
        "- dawid_skene: `crowdkit.aggregation.DawidSkene(n_iter=100)` (crowd-kit 1.4.2, the reference)",
        "- model_alone: argmax of the same probabilities, for context (uses no answers)",
        "- Spearman (own score): the method's own annotator score (CROWDLAB: cleanlab's "
        "`annotator_quality`; majority vote: agreement with the vote; Dawid-Skene: accuracy "
        "implied by each bot's fitted confusion matrix and the class priors) vs each bot's true "
        "accuracy in the run, over the 10 bots; mean over seeds",
        "- Spearman (agreement): labelgate's `annotator_scores` (agreement with that method's "
        "consensus), the score the review report shows",
        "",
        "| dataset | n | answers / item | method | consensus accuracy | sd over seeds | Spearman (own score) "
        "| Spearman (agreement) | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in grouped.itertuples(index=False):
        lines.append(
            f"| {row.dataset} | {sizes[row.dataset]} | {row.per_item} | {row.method} | {row.accuracy:.4f} | "
            f"{fmt(row.accuracy_sd, 4)} | {fmt(row.spearman_own)} | {fmt(row.spearman_agreement)} | "
            f"{row.seconds:.1f} |"
        )
    lines += [
        "",
        "Per seed:",
        "",
        "| dataset | answers / item | seed | method | accuracy | Spearman (own) | Spearman (agreement) |",
    ]
    lines.append("|---|---:|---:|---|---:|---:|---:|")
    for row in results.itertuples(index=False):
        lines.append(
            f"| {row.dataset} | {row.per_item} | {row.seed} | {row.method} | {row.accuracy:.4f} | "
            f"{fmt(row.spearman_own)} | {fmt(row.spearman_agreement)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,wine,rotten_tomatoes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--per-item", default="2,3", help="answers per item (several: comma-separated)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("labelgate.progress").setLevel(logging.WARNING)  # a line per model fitted
    started = dt.datetime.now(dt.UTC)
    rows = []
    for name in args.datasets.split(","):
        for per_item in (int(k) for k in args.per_item.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows += evaluate(name, seed=seed, per_item=per_item)
    text = report(pd.DataFrame(rows), args, started=started)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
