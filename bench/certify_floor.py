"""Certification floor: how many people-labeled items the gate needs before it accepts anything.

The labeling-cost target (>= 0.99 accuracy at <= 0.35 human labels per item) can only be met if
the gate auto-accepts machine labels, and the gate accepts a machine label only where its
threshold is certified (``tasks.gate.tune_thresholds``: a one-sided 95% lower bound >= the target,
fixed-sequence tested on out-of-sample predictions). This benchmark measures, in the best case,
how much evidence that takes: ``size`` items drawn at random, labeled with their *true* label
(as if people had settled them for free, with no answer wasted), out-of-sample probabilities from
the project's own ensemble (``tasks.autolabel.out_of_sample_proba``), and the share of them the
pooled threshold certifies (``tasks.gate.lowest_certified``). The evidence alone costs at least
``size / n`` human labels per item, before any audit and before any item under the threshold is
labeled. Run from the repo root::

    .venv/bin/python -m bench.certify_floor [--datasets digits,rotten_tomatoes]
        [--shares 0.1,0.167,0.25,0.3,0.35,0.45] [--seeds 0,1,2] [--target 0.99]
        [--models ensemble,svc_raw]

``--shares``: evidence sizes as shares of the dataset's items (the labels-per-item floor).

``--models``: ``ensemble`` is the project's; ``svc_raw`` (tabular only) is an RBF SVC on the raw
features, with no per-column scaling (on digits, pixels share one scale), sigmoid-calibrated: a
candidate that is more accurate on digits, to see whether it would certify sooner.

The table goes to stdout and to ``bench/results/certify_floor.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import warnings

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import SVC

from bench import write_results
from bench.datasets import load_dataset
from bench.noise_detection import machine
from tasks.autolabel import out_of_sample_proba
from tasks.gate import labels_needed, lowest_certified

RESULTS = "bench/results/certify_floor.md"


def _proba(model: str, X, y, kind: str, k: int, seed: int) -> np.ndarray:
    if model == "ensemble":
        return out_of_sample_proba(X, y, kind=kind, seed=seed, classes=k)
    svc = CalibratedClassifierCV(SVC(C=10, gamma="scale"), method="sigmoid", cv=5, ensemble=False)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(svc, X, y, cv=folds, method="predict_proba")


def certified_share(
    X, y, kind: str, k: int, size: int, seed: int, target: float, model: str = "ensemble"
) -> tuple[float, float, int]:
    """(accuracy out of sample, share of the evidence the pooled threshold certifies, rank of the
    first wrong prediction by confidence) on ``size`` random items with their true labels."""
    idx = np.random.default_rng([seed, 5]).choice(len(y), size=size, replace=False)
    probs = _proba(model, X[idx], y[idx], kind, k, seed)
    confidence, right = probs.max(axis=1), probs.argmax(axis=1) == y[idx]
    wrong = np.flatnonzero(~right[np.argsort(-confidence, kind="stable")])
    first_wrong = int(wrong[0]) if len(wrong) else size
    return float(right.mean()), lowest_certified(confidence, right, target)["coverage"], first_wrong


def _row(X, y, kind, classes, name: str, model: str, size: int, seeds: list[int], target: float) -> str:
    t = time.perf_counter()
    runs = [certified_share(X, y, kind, len(classes), size, s, target, model) for s in seeds]
    return (
        f"| {name} | {model} | {len(y)} | {size} | {size / len(y):.3f} "
        f"| {np.mean([r[0] for r in runs]):.4f} "
        f"| {', '.join(f'{r[1]:.2f}' for r in runs)} "
        f"| {', '.join(str(r[2]) for r in runs)} | {time.perf_counter() - t:.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,rotten_tomatoes")
    parser.add_argument("--shares", default="0.1,0.167,0.25,0.3,0.35,0.45")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--models", default="ensemble,svc_raw")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        "| dataset | model | items | evidence items | labels per item (floor) | out-of-sample accuracy "
        "| certified share of the evidence (per seed) | first wrong prediction by confidence "
        "(rank, per seed) | seconds |",
        "|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name in args.datasets.split(","):
        X, y, kind, classes = load_dataset(name)
        models = [m for m in args.models.split(",") if kind == "tabular" or m == "ensemble"]
        for model in models:
            for size in (round(float(s) * len(y)) for s in args.shares.split(",")):
                lines.append(_row(X, y, kind, classes, name, model, size, seeds, args.target))
                print(lines[-1], file=sys.stderr, flush=True)
    command = "python -m bench.certify_floor " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        "# Certification floor: evidence the gate needs before it accepts anything\n\n"
        f"- command: `{command.strip()}` (from the repo root, `.venv/bin/python`)\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {machine()}\n"
        f"- target: {args.target}; the smallest set that can pass at all is "
        f"{labels_needed(args.target)} items, all right (`labels_needed`)\n"
        "- evidence: random items with their true labels (the best case: people settled them at "
        "no extra cost); 5-fold out-of-sample probabilities of the project's ensemble; certified "
        "share: coverage of the pooled threshold (`lowest_certified`), 0 when none passes\n\n"
        + "\n".join(lines)
        + "\n"
    )
    write_results(text, args.out)


if __name__ == "__main__":
    main()
