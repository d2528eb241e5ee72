"""The demo job: scikit-learn's digits images with seeded label noise.

``write_demo(folder)`` writes ``digits.csv`` (64 pixel columns, some labels flipped, some items
unlabeled), ``digits-truth.csv`` (the clean labels, for the bots and the scorecard only),
``digits-gold.csv`` (30 items whose answers an expert checked: 3 per digit, mixed into the review
to score the labelers) and ``digits-job.yaml``. ``scorecard`` compares a published version with
the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import load_digits

CLASSES = [str(d) for d in range(10)]
GOLD_PER_CLASS = 3
NOISE, UNLABELED = 0.15, 0.2
"""Shares of labels flipped and missing in the demo (the bots' or no review)."""
BY_HAND_NOISE, BY_HAND_UNLABELED = 0.03, 0.03
"""The same when a person labels: about 150 tasks for one person instead of about 600."""


def write_demo(
    folder: Path,
    *,
    noise: float | None = None,
    unlabeled: float | None = None,
    seed: int = 7,
    review: str = "none",
) -> Path:
    """Write the demo data and spec; returns the spec path.

    noise: share of given labels flipped to a confusable digit (pair-flip c -> c+1 mod 10);
    unlabeled: share of items without a label (they get machine labels);
    review: "none", "bots" (three bot labelers in Label Studio, 2 answers per item) or "people"
    (the tasks wait in Label Studio for the person at the keyboard).

    By default 15% of the labels are flipped and 20% missing; labeling by hand, 3% and 3%: a
    job one person can finish (about 150 tasks rather than about 600).
    """
    by_hand = review == "people"
    noise = (BY_HAND_NOISE if by_hand else NOISE) if noise is None else noise
    unlabeled = (BY_HAND_UNLABELED if by_hand else UNLABELED) if unlabeled is None else unlabeled
    rng = np.random.default_rng(seed)
    digits = load_digits()
    n = len(digits.target)
    frame = pd.DataFrame(digits.data, columns=[f"px{i}" for i in range(64)])
    frame.insert(0, "id", [f"digit-{i:04d}" for i in range(n)])
    truth = digits.target.copy()
    given = truth.copy()
    flip = rng.random(n) < noise
    given[flip] = (given[flip] + 1) % 10
    label = pd.Series(given.astype(str), dtype=object)
    label[rng.random(n) < unlabeled] = None
    frame["label"] = label
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "digits.csv", index=False)
    pd.DataFrame(
        {"id": frame["id"], "true_label": truth.astype(str), "flipped": flip, "given": label}
    ).to_csv(folder / "digits-truth.csv", index=False)
    gold = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(truth == d), GOLD_PER_CLASS, replace=False) for d in range(10)]
        )
    )
    pd.DataFrame({"id": frame["id"].iloc[gold], "label": truth[gold].astype(str)}).to_csv(
        folder / "digits-gold.csv", index=False
    )
    spec = {
        "name": "digits-demo",
        "dataset": {
            "path": "digits.csv",
            "id_column": "id",
            "feature_columns": [f"px{i}" for i in range(64)],
            "label_column": "label",
        },
        "schema": {"classes": CLASSES, "instructions": "Which digit (0-9) does the 8x8 image show?"},
        "autolabel": {"target_accuracy": 0.98},
        "review": _review(review),
        # labeling by hand gets a label set (and a Label Studio project) of its own: the bots'
        # project of an earlier `make demo` already holds their answers to the same items
        "output": {"label_set": "digits-by-hand" if review == "people" else "digits"},
        "rights": {
            "license": "CC-BY-4.0",
            "source": "UCI ML hand-written digits, as shipped with scikit-learn",
            "allowed_uses": ["training", "evaluation"],
        },
    }
    path = folder / "digits-job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _review(mode: str) -> dict:
    if mode == "none":
        return {"mode": "none"}
    review = {
        "mode": "labelstudio",
        "annotators_per_item": 2 if mode == "bots" else 1,
        "audit_share": 0.05,
        "gold_path": "digits-gold.csv",
        "display": "digit_image",
    }
    if mode == "people":
        # one person at the keyboard: nobody else can give an item a second opinion (Label Studio
        # never hands a person the same task twice), so no item asks for one
        review["max_annotators_per_item"] = 1
    if mode == "bots":
        review["simulate"] = {
            "truth_path": "digits-truth.csv",
            "labelers": [
                {"accuracy": 0.95, "seed": 1},
                {"accuracy": 0.9, "seed": 2},
                {"accuracy": 0.85, "seed": 3},
            ],
        }
    return review


def scorecard(rows: pd.DataFrame, truth_csv: Path) -> dict[str, float]:
    """How the published labels compare with the clean truth."""
    truth = pd.read_csv(truth_csv, dtype={"true_label": str, "given": str})
    merged = rows.merge(truth, left_on="item_id", right_on="id")
    # the audit's scorecard: items that came with a label, less the gold items (an expert's
    # answer replaces their label; the audit never had to judge them)
    labeled = merged[merged["given"].notna() & (merged["source"] != "gold")]
    # flagged by the audit: still quarantined, or sent back to people for a re-review round
    flagged = (labeled["status"] == "quarantined") | labeled["reason"].str.contains(
        "the audit doubts this label", regex=False
    )
    flipped = labeled["flipped"].astype(bool)
    accepted = merged[merged["status"] == "accepted"]
    tp = int((flagged & flipped).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(flipped.sum()), 1)
    return {
        "planted_errors": int(flipped.sum()),
        "flagged_by_audit": int(flagged.sum()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "given_accuracy": float((labeled["given"] == labeled["true_label"]).mean()),
        "accepted": len(accepted),
        "accepted_accuracy": float((accepted["label"] == accepted["true_label"]).mean()),
        "labeled_by_people": int(merged["source"].isin(["human", "gold"]).sum()),
    }
