"""Learning rounds (tasks/learning.py): people label a random batch of what the model is unsure
of, and their verdicts join the dataset as learned labels. The flow runs them against a real
Label Studio in ``tests/integration/test_learning_rounds.py``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from tasks.ingest import UNLABELED, Dataset
from tasks.learning import (
    accepted_share,
    batch_drawn_once,
    batch_key,
    learned_labels,
    learning_batch,
    unlabeled_mask,
)
from tasks.route import route_items

CLASSES = ["a", "b"]


def _dataset(n: int = 100, labeled: int = 10, gold: int = 0) -> Dataset:
    given = np.full(n, UNLABELED)
    given[:labeled] = np.arange(labeled) % 2
    gold_codes = None
    if gold:
        gold_codes = np.full(n, UNLABELED)
        gold_codes[labeled : labeled + gold] = 0
    return Dataset(
        ids=np.array([f"i{i:03d}" for i in range(n)]),
        X=np.array([f"text {i}" for i in range(n)], dtype=object),
        given=given,
        classes=CLASSES,
        kind="text",
        fingerprint="f" * 16,
        source="test",
        gold=gold_codes,
    )


def _probs(n: int = 100) -> np.ndarray:
    conf = np.linspace(0.5, 1.0, n)  # item i's confidence grows with i; all predicted 'a'
    return np.c_[conf, 1 - conf]


THRESHOLDS = {"a": {"threshold": 0.8}, "b": {"threshold": math.inf}}


def test_learned_labels_teach_the_model_and_are_evidence_but_are_not_given_labels():
    data = _dataset()
    taught = data.with_learned({"i050": "b", "i003": "a"})  # i003 has a given label: it keeps it
    assert taught.n_labeled == data.n_labeled == 10
    assert taught.n_learned == 1 and taught.learned_ids == {"i050"}
    assert taught.training_labels[50] == 1 and taught.training_labels[3] == data.given[3]
    assert taught.evidence[50] and taught.evidence_labels[50] == 1
    assert not data.evidence[50] and data.n_learned == 0
    # the cached stages key on the fingerprint: new labels, new key; the same labels, the same key
    assert taught.fingerprint != data.fingerprint
    assert data.with_learned({"i050": "b"}).fingerprint == taught.fingerprint
    assert taught.data_fingerprint == data.fingerprint  # the lineage's: the input file's
    # rounds add up
    again = taught.with_learned({"i060": "a"})
    assert again.learned_ids == {"i050", "i060"}


def test_the_batch_is_a_seeded_sample_of_unlabeled_items_under_their_threshold():
    data = _dataset(labeled=10, gold=5)  # i010..i014 are gold items
    probs = _probs()
    batch = learning_batch(data, probs, THRESHOLDS, share=0.1, seed=0, round_=0)
    assert len(batch) == 10 and batch == sorted(batch)
    position = {f"i{i:03d}": i for i in range(100)}
    for item in batch:
        i = position[item]
        assert i >= 15  # neither labeled nor gold
        assert probs[i].max() < 0.8  # under the threshold of its predicted class
    assert batch == learning_batch(data, probs, THRESHOLDS, share=0.1, seed=0, round_=0)
    assert batch != learning_batch(data, probs, THRESHOLDS, share=0.1, seed=0, round_=1)
    # a learned item is not asked again
    taught = data.with_learned(dict.fromkeys(batch, "a"))
    assert not set(batch) & set(learning_batch(taught, probs, THRESHOLDS, share=0.1, seed=0, round_=1))


def test_the_batch_takes_what_is_left_and_is_empty_when_nothing_is_under_the_thresholds():
    data, probs = _dataset(), _probs()
    under = int((unlabeled_mask(data) & (probs.max(axis=1) < 0.8)).sum())
    assert len(learning_batch(data, probs, THRESHOLDS, share=0.9, seed=0, round_=0)) == under
    everything = {"a": {"threshold": 0.0}, "b": {"threshold": 0.0}}
    assert learning_batch(data, probs, everything, share=0.1, seed=0, round_=0) == []


def test_accepted_share_counts_only_items_nobody_labeled():
    data, probs = _dataset(), _probs()
    free = unlabeled_mask(data)
    expected = (probs[free].max(axis=1) >= 0.8).mean()
    assert math.isclose(accepted_share(data, probs, THRESHOLDS), expected)
    taught = data.with_learned({f"i{i:03d}": "a" for i in range(10, 100)})
    assert accepted_share(taught, probs, THRESHOLDS) == 1.0  # nothing left to accept


def test_people_s_verdict_keeps_the_machine_label_when_it_is_among_their_most_frequent_answers():
    answers = pd.DataFrame(
        [
            ("x", "ann1", "a", "ok"),
            ("x", "ann2", "b", "ok"),  # tie: the machine label 'a' is among the most frequent
            ("y", "ann1", "b", "ok"),
            ("y", "ann2", "b", "ok"),  # people overturn it
            ("z", "ann1", None, "skipped"),  # nobody answered usably: left out
        ],
        columns=["item_id", "annotator", "label", "status"],
    )
    verdicts = learned_labels(answers, {"x": "a", "y": "a", "z": "a"})
    assert verdicts == {"x": "a", "y": "b"}


def test_learned_items_are_routed_as_people_s_labels_never_as_probes_or_audit_samples():
    rows = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(6)],
            "status": ["accepted"] * 5 + ["needs_review"],
            "source": "model",
            "reason": "",
            "predicted_label": "a",
        }
    )
    routed = route_items(
        rows, audit_share=1.0, seed=0, learned_ids={"i0", "i5"}, probe={"a": 2}, minimum_audit=1
    ).set_index("item_id")["route"]
    assert routed["i0"] == routed["i5"] == "learning"
    assert (routed.drop(["i0", "i5"]) != "learning").all()
    assert (routed == "probe").sum() == 2


def _spec(label_set: str = "pets", share: float = 0.1, target: float = 0.95) -> SimpleNamespace:
    return SimpleNamespace(
        output=SimpleNamespace(label_set=label_set),
        autolabel=SimpleNamespace(seed=0, target_accuracy=target),
        review=SimpleNamespace(learning=SimpleNamespace(batch_share=share)),
    )


def test_a_rerun_asks_for_the_batch_first_drawn_even_when_the_model_changed(isolated_store):
    """People edited an earlier round's answers: the model and thresholds differ on the rerun,
    but the round asks for the same items, less those labeled since."""
    data, spec = _dataset(), _spec()
    first = batch_drawn_once(spec, data, _probs(), THRESHOLDS, round_=1)
    assert first == learning_batch(data, _probs(), THRESHOLDS, share=0.1, seed=0, round_=1)
    changed = _probs()[::-1].copy()  # another model: other items under the threshold
    assert learning_batch(data, changed, THRESHOLDS, share=0.1, seed=0, round_=1) != first
    assert batch_drawn_once(spec, data, changed, THRESHOLDS, round_=1) == first
    taught = data.with_learned({first[0]: "a"})  # labeled since: not asked again
    assert batch_drawn_once(spec, taught, changed, THRESHOLDS, round_=1) == first[1:]
    # another round, another job or other settings draw their own
    assert batch_drawn_once(spec, data, changed, THRESHOLDS, round_=2) != first
    assert batch_key(_spec("other"), data) != batch_key(spec, data) != batch_key(_spec(share=0.2), data)
    assert batch_key(_spec(target=0.99), data) != batch_key(spec, data)
    assert batch_drawn_once(_spec("other"), data, changed, THRESHOLDS, round_=1) != first
