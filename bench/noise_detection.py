"""Noise detection: labelgate's audit vs bare cleanlab, side by side, same data, seeds, machine.

For every dataset and noise rate, labels get seeded pair-flip noise (class ``c`` -> ``c+1 mod k``).
Then both methods flag items:

- ``reference``: ``cleanlab.filter.find_label_issues(labels, pred_probs)`` with defaults, on
  5-fold ``cross_val_predict(method="predict_proba")`` of StandardScaler+LogisticRegression
  (tabular) or TfidfVectorizer+LogisticRegression (text);
- ``labelgate``: :func:`tasks.audit.audit_labels` with its defaults.

Reported per method: precision, recall and F1 of the flagged set against the truly corrupted
items, accuracy of the labels left accepted (unflagged), number flagged, and wall time; means
over the seeds. Run from the repo root::

    .venv/bin/python -m bench.noise_detection [--seeds 0,1] [--rates 0.2,0.4] [--datasets ...]

The table goes to stdout and to ``bench/results/noise_detection.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench import write_results
from bench.datasets import DATASETS, load_dataset, pair_flip_noise
from tasks.audit import audit_labels, audit_settings

logger = logging.getLogger("bench.noise_detection")

RESULTS = Path(__file__).parent / "results" / "noise_detection.md"


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    accepted_accuracy: float
    n_flagged: int
    seconds: float


def score(flagged: np.ndarray, noisy: np.ndarray, true: np.ndarray, seconds: float) -> Score:
    """Precision/recall/F1 of ``flagged`` vs corrupted items, accuracy of the unflagged labels."""
    corrupted = noisy != true
    tp = int((flagged & corrupted).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(corrupted.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kept = ~flagged
    accepted = float((noisy[kept] == true[kept]).mean()) if kept.any() else float("nan")
    return Score(precision, recall, f1, accepted, int(flagged.sum()), seconds)


def reference_flags(X: np.ndarray, noisy: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """Bare cleanlab on 5-fold logistic-regression probabilities."""
    if kind == "tabular":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    else:
        model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    probs = cross_val_predict(model, X, noisy, cv=5, method="predict_proba")
    return np.asarray(find_label_issues(noisy, probs), dtype=bool)


def labelgate_flags(X: np.ndarray, noisy: np.ndarray, kind: str, seed: int) -> np.ndarray:
    suspects, _ = audit_labels(X, noisy, kind=kind, seed=seed, n_folds=5)
    return suspects["is_suspect"].to_numpy()


def mean_score(scores: list[Score]) -> Score:
    return Score(
        *(
            float(np.mean([getattr(s, f) for s in scores]))
            for f in ("precision", "recall", "f1", "accepted_accuracy")
        ),
        n_flagged=round(float(np.mean([s.n_flagged for s in scores]))),
        seconds=float(np.mean([s.seconds for s in scores])),
    )


def machine() -> str:
    mem = "unknown"
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"nproc={os.cpu_count()}, memory={mem}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def run(datasets: list[str], rates: list[float], seeds: list[int]) -> str:
    rows = []
    for name in datasets:
        X, y, kind, class_names = load_dataset(name)
        for rate in rates:
            ref_scores, our_scores = [], []
            for seed in seeds:
                noisy = pair_flip_noise(y, rate=rate, seed=seed)
                t = time.perf_counter()
                ref = reference_flags(X, noisy, kind, seed)
                ref_scores.append(score(ref, noisy, y, time.perf_counter() - t))
                t = time.perf_counter()
                ours = labelgate_flags(X, noisy, kind, seed)
                our_scores.append(score(ours, noisy, y, time.perf_counter() - t))
            ref_m, our_m = mean_score(ref_scores), mean_score(our_scores)
            logger.info(
                "%s @ %.0f%%: F1 reference %.3f, labelgate %.3f",
                name,
                rate * 100,
                ref_m.f1,
                our_m.f1,
            )
            rows.append((name, len(y), len(class_names), rate, ref_m, our_m))

    header = (
        "| dataset | n | k | noise | method | precision | recall | F1 | ΔF1 | accepted acc "
        "| flagged | seconds |\n"
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for name, n, k, rate, ref_m, our_m in rows:
        for label, s in (("reference", ref_m), ("labelgate", our_m)):
            delta = f"{our_m.f1 - ref_m.f1:+.3f}" if label == "labelgate" else ""
            lines.append(
                f"| {name} | {n} | {k} | {rate:.0%} | {label} | {s.precision:.3f} | "
                f"{s.recall:.3f} | {s.f1:.3f} | {delta} | {s.accepted_accuracy:.3f} | "
                f"{s.n_flagged} | {s.seconds:.1f} |"
            )
    command = "python -m bench.noise_detection " + " ".join(sys.argv[1:])
    settings = audit_settings()
    text = (
        "# Noise detection: labelgate audit vs bare cleanlab\n\n"
        f"- command: `{command.strip()}` (from the repo root, `.venv/bin/python`)\n"
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {machine()}\n"
        f"- seeds: {', '.join(map(str, seeds))} (figures are means over seeds)\n"
        "- noise: seeded pair-flip, class c -> (c+1) mod k, exactly round(rate * n_c) items "
        "per class\n"
        "- reference: `cleanlab.filter.find_label_issues(labels, pred_probs)` (defaults) on "
        "5-fold `cross_val_predict` probabilities of StandardScaler+LogisticRegression (tabular) "
        "or TfidfVectorizer+LogisticRegression (text)\n"
        f"- labelgate: `tasks.audit.audit_labels` defaults: {settings}\n"
        "- accepted acc: accuracy of the given labels of the items not flagged\n\n"
        + header
        + "\n".join(lines)
        + "\n"
    )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--rates", default="0.2,0.4")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("labelgate.progress").setLevel(logging.WARNING)  # a line per model fitted
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    text = run(
        [d for d in args.datasets.split(",") if d],
        [float(r) for r in args.rates.split(",")],
        [int(s) for s in args.seeds.split(",")],
    )
    logger.info("wrote %s", write_results(text, args.out))


if __name__ == "__main__":
    main()
