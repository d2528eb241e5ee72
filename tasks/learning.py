"""learning: rounds in which people teach the model before the rest of the job is decided.

With ``review.learning.rounds`` > 0, the flow (``flows/learning_round.py``) does this after the
thresholds are tuned, and before anything is routed for good:

1. If the thresholds already accept ``stop_share`` of the items nobody labeled, stop.
2. Else people label a seeded random batch (``batch_share`` of all items) of the machine labels
   under their class threshold. The batch is kept in the label store, so a rerun asks for the same
   items (``batch_drawn_once``). Their answers are adjudicated like a checked machine label
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

import hashlib
import json
import math

import numpy as np
import pandas as pd

from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
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


def batch_key(spec: LabelingJobSpec, dataset: Dataset) -> str:
    """Names a job's learning batches in the label store: its label set, input file and the
    settings that draw them (seed, batch share, and the target accuracy the thresholds are tuned
    to: another target puts other items under them). A changed setting draws anew; answers people
    gave to an earlier draw still reach the label set (``flows.review_round.earlier_answers``)."""
    parts = [
        spec.output.label_set,
        dataset.data_fingerprint,
        spec.autolabel.seed,
        spec.review.learning.batch_share,
        spec.autolabel.target_accuracy,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def batch_drawn_once(
    spec: LabelingJobSpec,
    dataset: Dataset,
    pred_probs: np.ndarray,
    thresholds: dict[str, dict],
    *,
    round_: int,
) -> list[str]:
    """The round's learning batch as it was first drawn for this job (kept in the label store),
    less the items labeled since; drawn now (``learning_batch``) and kept when there is none.

    A resumed run starts again from the top and reads people's answers again. Where they edited an
    earlier round's answers, the model and its thresholds change, and a new draw would pick
    other items: the tasks people answered would be left behind, and others asked for instead."""
    store, key = LabelStore(), batch_key(spec, dataset)
    kept = store.learning_batches(key).get(round_)
    if kept is not None:
        free = set(dataset.ids[unlabeled_mask(dataset)].astype(str))
        return [item for item in kept if item in free]
    learning = spec.review.learning
    batch = learning_batch(
        dataset, pred_probs, thresholds, share=learning.batch_share, seed=spec.autolabel.seed, round_=round_
    )
    store.save_learning_batch(key, round_, batch)
    return batch


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
