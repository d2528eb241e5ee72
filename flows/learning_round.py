"""One learning round, called by the labeling flow when ``review.learning.rounds`` > 0 and the
thresholds do not yet accept enough of the unlabeled items (``tasks/learning.py``). It wires the
stages and nothing else.

    learning batch (seeded, under the thresholds; on a rerun, as first drawn) ─► answers from
    people (import, bots, one more person where a verdict is open, wait) ─► people's verdicts
    ─► the dataset with them learned

The caller trains the model again on the returned dataset and tunes the thresholds again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.review_round import answers_from_people
from labelgate.spec import LabelingJobSpec
from tasks.ingest import Dataset
from tasks.learning import batch_drawn_once, learned_labels
from tasks.route import REASONS


def learning_round(
    spec: LabelingJobSpec,
    dataset: Dataset,
    rows: pd.DataFrame,
    pred_probs: np.ndarray,
    thresholds: dict[str, dict],
    model_version: str,
    *,
    round_: int,
) -> Dataset:
    """People label a random batch of the machine labels under their thresholds; returns the
    dataset with their verdicts learned (unchanged when there is nothing under the thresholds)."""
    batch = task(batch_drawn_once, name="learning_batch", cache_policy=NO_CACHE)(
        spec, dataset, pred_probs, thresholds, round_=round_
    )
    if not batch:
        return dataset
    routed = pd.DataFrame(
        {"item_id": batch, "route": "learning", "route_reason": f"{REASONS['learning']} (round {round_ + 1})"}
    )
    reviews = answers_from_people(
        spec, dataset, rows, routed, pred_probs, model_version, wait_key=f"learning{round_ + 1}"
    )
    shown = rows.set_index("item_id").loc[batch, "label"].astype(str).to_dict()
    verdicts = learned_labels(reviews.annotations, shown)
    get_run_logger().info(
        "learning round %d: people labeled %d of %d items; %d agreed with the machine label",
        round_ + 1,
        len(verdicts),
        len(batch),
        sum(verdicts[i] == shown[i] for i in verdicts),
    )
    return dataset.with_learned(verdicts)
