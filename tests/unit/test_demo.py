"""The bundled demo's data: gold items that score the labelers, and a scorecard that leaves them
out of the audit's figures (labelgate/demo.py)."""

from __future__ import annotations

import pandas as pd

from labelgate.demo import GOLD_PER_CLASS, scorecard, write_demo
from labelgate.spec import load_spec
from tasks.ingest import load_dataset, read_answers
from tasks.review import most_answers


def test_the_demo_mixes_in_gold_items_that_the_job_reads_and_checks(tmp_path):
    spec = load_spec(write_demo(tmp_path, review="bots"))
    assert spec.review.gold_path is not None
    dataset = load_dataset(spec.dataset, spec.label_schema)
    gold = read_answers(spec.review.gold_path, dataset, column="label", id_column="id", what="gold")
    truth = pd.read_csv(tmp_path / "digits-truth.csv", dtype=str).set_index("id")["true_label"]
    assert len(gold) == 10 * GOLD_PER_CLASS
    assert pd.Series(gold).value_counts().tolist() == [GOLD_PER_CLASS] * 10
    assert all(truth[item] == label for item, label in gold.items())
    # without people there is nobody to score
    assert load_spec(write_demo(tmp_path / "none", review="none")).review.gold_path is None


def test_the_scorecard_leaves_gold_items_out_of_the_audit_figures(tmp_path):
    write_demo(tmp_path, review="bots")
    truth = pd.read_csv(tmp_path / "digits-truth.csv", dtype={"true_label": str, "given": str})
    gold = set(pd.read_csv(tmp_path / "digits-gold.csv", dtype=str)["id"])
    # a published version where every label is the true one; flipped items were re-reviewed
    rows = pd.DataFrame(
        {
            "item_id": truth["id"],
            "label": truth["true_label"],
            "status": "accepted",
            "source": ["gold" if i in gold else "human" for i in truth["id"]],
            "reason": ["the audit doubts this label" if f else "" for f in truth["flipped"]],
        }
    )
    card = scorecard(rows, tmp_path / "digits-truth.csv")
    planted = truth["flipped"] & truth["given"].notna()
    assert card["planted_errors"] == int((planted & ~truth["id"].isin(gold)).sum()) < int(planted.sum())
    assert card["recall"] == 1.0 and card["precision"] == 1.0
    assert card["accepted_accuracy"] == 1.0 and card["labeled_by_people"] == len(truth)


def test_a_person_labeling_the_demo_alone_is_never_asked_for_a_second_opinion(tmp_path):
    """Label Studio never hands a person the same task twice: with one person at the keyboard,
    an item that wanted a second answer would wait forever (found by hand, 2026-12-01)."""
    people = load_spec(write_demo(tmp_path / "people", review="people"))
    assert people.review.annotators_per_item == 1 and most_answers(people) == 1
    bots = load_spec(write_demo(tmp_path / "bots", review="bots"))
    assert most_answers(bots) == 3  # three bots: the extra opinions have someone to come from


def test_labeling_the_demo_by_hand_starts_from_a_project_the_bots_have_not_answered(tmp_path):
    by_hand = load_spec(write_demo(tmp_path / "people", review="people")).output.label_set
    assert by_hand != load_spec(write_demo(tmp_path / "bots", review="bots")).output.label_set


def test_the_demo_for_a_person_plants_fewer_errors_so_that_one_person_can_finish_it(tmp_path):
    from labelgate.demo import BY_HAND_NOISE, NOISE

    def shares(review):
        write_demo(tmp_path / review, review=review)
        truth = pd.read_csv(tmp_path / review / "digits-truth.csv")
        return truth["flipped"].mean(), truth["given"].isna().mean()

    flipped, missing = shares("bots")
    assert abs(flipped - NOISE) < 0.03 and abs(missing - 0.2) < 0.03
    flipped, missing = shares("people")
    assert abs(flipped - BY_HAND_NOISE) < 0.015 and abs(missing - 0.03) < 0.015
    assert write_demo(tmp_path / "mine", review="people", noise=0.5).exists()  # still settable
    assert pd.read_csv(tmp_path / "mine" / "digits-truth.csv")["flipped"].mean() > 0.4
