"""learning: rounds in which people teach the model before the rest of the job is decided.

With ``review.learning.rounds`` > 0, the flow (``flows/learning_round.py``) does this after the
thresholds are tuned, and before anything is routed for good:

1. If the thresholds already accept ``stop_share`` of the items nobody labeled, stop.
2. Else people label a seeded random batch (``batch_share`` of all items) of the machine labels
   under their class threshold. Their answers are adjudicated like a checked machine label
   (``tasks.review.adjudication``): the machine label is right once it is among people's most
   frequent answers, wrong once another answer leads it by the margin.
3. People's verdicts join the dataset as learned labels (``Dataset.with_learned``). The model is
   trained again on them, and the thresholds are tuned again with them as evidence.

After the last round, the routing sends the learned items once more (route ``learning``). Their
answers are already in, so nothing new is asked unless the new model's prediction leaves a verdict
open. They become people's labels in the label set, with their annotators in the lineage.

A class whose threshold nothing certifies sends all its machine labels to people, and one that
certifies at a high confidence sends many. Labeling a random batch of them first costs no more
than labeling them later. Then each round's evidence lowers the thresholds that certify, and
the model trained on more labels is right more often. On the 2-class texts of
``bench/labeling_cost.py`` (4 rounds of 2%) this is the difference between 0.505 and 0.277 human
labels per item at 0.99+ accuracy (seed 0; under 0.35 on 2 seeds of 3).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tasks.consensus import plurality_answers
from tasks.ingest import UNLABELED, Dataset


def unlabeled_mask(dataset: Dataset) -> np.ndarray:
    """(n,) bool: items with no label yet, neither given nor learned, and no known answer."""
    free = dataset.training_labels == UNLABELED
    if dataset.gold is not None:
        free &= dataset.gold == UNLABELED
    return free


def _under_threshold(dataset: Dataset, pred_probs: np.ndarray, thresholds: dict[str, dict]) -> np.ndarray:
    """(n,) bool: items whose machine label is under its class threshold."""
    limit = np.array([thresholds[c]["threshold"] for c in dataset.classes], dtype=float)
    return pred_probs.max(axis=1) < limit[pred_probs.argmax(axis=1)]


def accepted_share(dataset: Dataset, pred_probs: np.ndarray, thresholds: dict[str, dict]) -> float:
    """Share of the items nobody labeled whose machine label reaches its class threshold (1.0
    when every item is labeled)."""
    free = unlabeled_mask(dataset)
    if not free.any():
        return 1.0
    return float(1.0 - _under_threshold(dataset, pred_probs, thresholds)[free].mean())


def learning_batch(
    dataset: Dataset,
    pred_probs: np.ndarray,
    thresholds: dict[str, dict],
    *,
    share: float,
    seed: int,
    round_: int,
) -> list[str]:
    """A seeded random ``share`` of all items, drawn from the machine labels under their class
    threshold (all of them when fewer). The same dataset, thresholds and seed give the same
    batch, so a resumed run asks for the same items."""
    under = unlabeled_mask(dataset) & _under_threshold(dataset, pred_probs, thresholds)
    candidates = np.flatnonzero(under)
    size = min(len(candidates), math.ceil(share * len(dataset.ids)))
    if size == 0:
        return []
    picked = np.random.default_rng([seed, 29, round_]).choice(candidates, size=size, replace=False)
    return sorted(dataset.ids[picked].astype(str).tolist())


def learned_labels(annotations: pd.DataFrame, machine_labels: dict[str, str]) -> dict[str, str]:
    """People's verdict on each answered item of a learning batch, with no model in it: the
    machine label where it is among the labels people gave most often, else the first (by name)
    of those. Items nobody answered usably are left out.

    machine_labels: item_id -> the machine label people were shown."""
    said = plurality_answers(annotations)
    out = {}
    for item, machine in machine_labels.items():
        top = said.get(item)
        if top:
            out[item] = machine if machine in top else sorted(top)[0]
    return out
