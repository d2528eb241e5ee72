import numpy as np
import pandas as pd

from tasks.consensus import (
    annotator_scores,
    consensus_labels,
    needs_another_annotator,
    plurality_answers,
    settling_margin,
    unsettled_checks,
)
from tasks.review import Reviews, apply_reviews, waiting_on_nobody
from tasks.route import route_items, with_earlier_answers

CLASSES = ["a", "b", "c"]


def _rows():
    return pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(8)],
            "label": ["a", "b", "c", "a", "b", "c", "a", "b"],
            "status": [
                "accepted",
                "quarantined",
                "needs_review",
                "accepted",
                "accepted",
                "accepted",
                "accepted",
                "accepted",
            ],
            "source": ["given", "given", "model", "model", "model", "model", "model", "given"],
            "quality": 0.5,
            "confidence": 0.9,
            "given_label": ["a", "b", None, None, None, None, None, "b"],
            "predicted_label": ["a", "c", "c", "a", "b", "c", "a", "b"],
            "reason": [
                "ok",
                "given 'b'; the model gives 'c' p=0.90",
                "unsure",
                "sure",
                "sure",
                "sure",
                "sure",
                "ok",
            ],
        }
    )


def test_routing_sends_gold_quarantined_unsure_and_an_audit_sample():
    routed = route_items(_rows(), audit_share=0.5, seed=0, gold_ids={"i7"})
    route = dict(zip(routed["item_id"], routed["route"], strict=True))
    assert route["i1"] == "quarantined" and route["i2"] == "low_confidence" and route["i7"] == "gold"
    assert sum(r == "audit_sample" for r in route.values()) == 2  # half of the 4 sure machine labels
    assert "i0" not in route  # an accepted given label is not re-reviewed
    assert "the model gives 'c'" in routed.set_index("item_id").at["i1", "route_reason"]


def test_items_people_answered_that_the_routing_no_longer_sends_join_the_round():
    rows = _rows()
    routed = route_items(rows, audit_share=0.0, seed=0)  # i1 quarantined, i2 unsure
    answers = pd.DataFrame(
        {
            "item_id": ["i2", "i4", "i5", "i6", "gone"],
            "status": ["ok", "ok", "skipped", "ok", "ok"],
        }
    )
    joined = with_earlier_answers(routed, answers, rows[rows["item_id"] != "i6"])
    route = dict(zip(joined["item_id"], joined["route"], strict=True))
    # i4 was answered (an earlier run's audit sample, say); a skip alone (i5) is no answer, and
    # items outside the round's rows (i6 kept from people, "gone" no longer in the file) stay out
    assert route == {"i1": "quarantined", "i2": "low_confidence", "i4": "answered_earlier"}
    assert with_earlier_answers(routed, answers.iloc[:1], rows) is routed


def test_consensus_of_three_noisy_annotators_beats_each_of_them():
    rng = np.random.default_rng(0)
    n = 300
    truth = rng.integers(0, 3, n)
    ids = [f"i{k}" for k in range(n)]
    rows, accs = [], [0.9, 0.8, 0.75]
    for j, acc in enumerate(accs):
        answers = np.where(rng.random(n) < acc, truth, (truth + rng.integers(1, 3, n)) % 3)
        rows += [
            {"item_id": i, "annotator": f"u{j}", "label": CLASSES[a]}
            for i, a in zip(ids, answers, strict=True)
        ]
    annotations = pd.DataFrame(rows)
    probs = np.full((n, 3), 0.2)
    probs[np.arange(n), truth] = 0.6
    crowd = consensus_labels(annotations, ids, CLASSES, pred_probs=probs)
    vote = consensus_labels(annotations, ids, CLASSES)
    right = np.asarray(CLASSES, dtype=object)[truth]
    assert crowd["method"].iloc[0] == "crowdlab" and vote["method"].iloc[0] == "majority_vote"
    assert (crowd["label"] == right).mean() > max(accs)
    assert (vote["label"] == right).mean() > accs[1]
    scores = annotator_scores(annotations, crowd, gold=dict(zip(ids, right, strict=True)))
    assert scores.sort_values("gold_accuracy")["annotator"].tolist() == ["u2", "u1", "u0"]


def test_active_learning_picks_items_without_agreement_first():
    ids = ["i0", "i1", "i2"]
    annotations = pd.DataFrame(
        {
            "item_id": ["i0", "i0", "i1", "i1"],
            "annotator": ["u", "v", "u", "v"],
            "label": ["a", "a", "a", "b"],
        }
    )
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.5, 0.1], [0.3, 0.3, 0.4]])
    assert needs_another_annotator(annotations, ids, CLASSES, probs, budget=2) == ["i2", "i1"]


def test_apply_reviews_uses_consensus_gold_and_measures_machine_labels_and_flags():
    rows = _rows()
    routed = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i7"],
            "route": ["quarantined", "low_confidence", "audit_sample", "gold"],
            "route_reason": ["doubt", "unsure", "sample", "gold"],
        }
    )
    consensus = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i7"],
            "label": ["c", "b", "b", "a"],
            "quality": 0.9,
            "agreement": 1.0,
            "n_annotations": 2,
            "method": "crowdlab",
        }
    )
    answers = pd.DataFrame(
        [
            (item, who, label, "ok")
            for item, label in zip(consensus["item_id"], consensus["label"], strict=True)
            for who in ("u1", "u2")
        ],
        columns=["item_id", "annotator", "label", "status"],
    )
    reviews = Reviews(
        1, "http://ls/projects/1/data", routed, answers, consensus, pd.DataFrame(columns=["annotator"])
    )
    out, summary = apply_reviews(rows, reviews, gold={"i7": "b"})
    out = out.set_index("item_id")
    assert out.loc["i1", ["label", "status", "source"]].tolist() == ["c", "accepted", "human"]
    assert out.loc["i7", ["label", "source"]].tolist() == ["b", "gold"]  # the known answer wins
    assert out.loc["i0", "source"] == "given"  # not routed, untouched
    assert summary["machine_accuracy"]["checked"] == 1 and summary["machine_accuracy"]["correct"] == 0
    assert summary["quarantine_resolution"]["confirmed"] == 1


def test_the_audit_scores_the_machine_label_against_people_even_when_crowdlab_sided_with_it():
    rows = _rows()  # i3 carries the machine label "a"
    routed = pd.DataFrame({"item_id": ["i3"], "route": ["audit_sample"], "route_reason": ["sample"]})
    # both people said "b"; CROWDLAB weighed the model in and kept "a", which nobody answered
    consensus = pd.DataFrame(
        {
            "item_id": ["i3"],
            "label": ["a"],
            "quality": 0.4,
            "agreement": 0.0,
            "n_annotations": 2,
            "method": "crowdlab",
        }
    )
    answers = pd.DataFrame(
        [("i3", "u1", "b", "ok"), ("i3", "u2", "b", "ok")],
        columns=["item_id", "annotator", "label", "status"],
    )
    reviews = Reviews(
        1, "http://ls/projects/1/data", routed, answers, consensus, pd.DataFrame(columns=["annotator"])
    )
    out, summary = apply_reviews(rows, reviews, gold={})
    assert summary["machine_accuracy"]["checked"] == 1 and summary["machine_accuracy"]["correct"] == 0
    assert summary["labels_no_reviewer_gave"] == 1
    reason = out.set_index("item_id").at["i3", "reason"]
    assert "no reviewer gave this label" in reason and "'b'" in reason
    from tasks.report import build_report

    text = build_report(
        out, classes=CLASSES, lineage={"review": summary}, version=0, created=True, plot_name=None
    )
    assert "0 of 1 equal to people's most frequent answer" in text
    assert "1 reviewed item(s) carry a label no reviewer gave" in text


def test_the_audit_sample_is_large_enough_to_verify_the_target_or_takes_every_machine_label():
    import pandas as pd

    from tasks.route import route_items

    rows = pd.DataFrame(
        {
            "item_id": [f"m{i}" for i in range(300)],
            "status": "accepted",
            "source": "model",
            "reason": "",
        }
    )
    share_only = route_items(rows, audit_share=0.05, seed=0)
    floored = route_items(rows, audit_share=0.05, seed=0, minimum_audit=189)
    few = route_items(rows.iloc[:40], audit_share=0.05, seed=0, minimum_audit=189)
    off = route_items(rows, audit_share=0.0, seed=0, minimum_audit=189)
    assert len(share_only) == 15 and len(floored) == 189 and len(few) == 40 and off.empty
    assert set(floored["route"]) == {"audit_sample"}


def test_people_outvote_the_model_when_their_answer_leads_by_two():
    """CROWDLAB can side with a confident model against two agreeing people; where people's most
    frequent answer leads by two or more (2-0, 3-1), it is the label. Answers as the review
    escalates them: one, and more while they disagree with the model, until a strict majority."""
    classes = ["review", "plot"]
    rng = np.random.default_rng(0)
    n = 1000
    truth = (rng.random(n) < 0.5).astype(int)
    ids = [f"t{i}" for i in range(n)]
    model = np.where(rng.random(n) < 0.96, truth, 1 - truth)
    conf = rng.uniform(0.6, 0.99, n)
    probs = np.zeros((n, 2))
    probs[np.arange(n), model] = conf
    probs[np.arange(n), 1 - model] = 1 - conf
    rows = []
    for i in range(n):
        answers: list[int] = []
        while len(answers) < 5:
            answers.append(int(truth[i] if rng.random() < 0.9 else 1 - truth[i]))
            votes = np.bincount(answers, minlength=2)
            settled = len(answers) == 1 and answers[0] == model[i]
            if settled or (votes.max() >= 2 and votes.max() > votes.min()):
                break
        rows += [
            {"item_id": ids[i], "annotator": f"u{j}", "label": classes[a]} for j, a in enumerate(answers)
        ]
    annotations = pd.DataFrame(rows)
    out = consensus_labels(annotations, ids, classes, pred_probs=probs)
    assert out["method"].iloc[0] == "crowdlab" and out.attrs["model_overruled"] > 0
    counts = annotations.groupby("item_id")["label"].agg(lambda s: s.value_counts().tolist())
    leads = counts[counts.map(lambda c: c[0] - (c[1] if len(c) > 1 else 0) >= 2)].index
    majority = annotations.groupby("item_id")["label"].agg(lambda s: s.value_counts().index[0])
    labels = out.set_index("item_id")["label"]
    assert len(leads) and (labels[leads] == majority[leads]).all()
    accuracy = (out["label"].to_numpy() == np.asarray(classes, dtype=object)[truth]).mean()
    assert accuracy > 0.98  # CROWDLAB's label alone: 0.966 on these answers


def test_tied_answers_get_the_same_label_on_every_run():
    """cleanlab's majority vote breaks its last ties at random (and fails when every item is
    tied): a rerun must not relabel, and nothing may crash."""
    ids = [f"t{i}" for i in range(200)]
    annotations = pd.DataFrame(
        [(i, "u1", "a") for i in ids] + [(i, "u2", "b") for i in ids],
        columns=["item_id", "annotator", "label"],
    )
    runs = []
    for seed in (1, 2):
        np.random.seed(seed)
        runs.append(consensus_labels(annotations, ids, CLASSES)["label"].tolist())
    assert runs[0] == runs[1] == ["a"] * 200  # every item tied, nobody to prefer: the first class
    # a tie goes to the annotator who agrees most with the untied items (u1 here, not u2)
    clear = [
        (f"c{i}", who, label) for i in range(5) for who, label in (("u1", "a"), ("u3", "a"), ("u2", "b"))
    ]
    tied = [("x", "u1", "b"), ("x", "u2", "a")]
    frame = pd.DataFrame(clear + tied, columns=["item_id", "annotator", "label"])
    out = consensus_labels(frame, [f"c{i}" for i in range(5)] + ["x"], CLASSES).set_index("item_id")
    assert out.at["x", "label"] == "b" and (out.loc[[f"c{i}" for i in range(5)], "label"] == "a").all()


def test_plurality_answers_are_people_only_and_keep_ties():
    annotations = pd.DataFrame(
        [
            ("a", "u1", "cat", "ok"),
            ("a", "u2", "cat", "ok"),
            ("a", "u3", "dog", "ok"),
            ("b", "u1", "cat", "ok"),
            ("b", "u2", "dog", "ok"),
            ("c", "u1", None, "skipped"),
            ("d", "u1", "dog", "ok"),
            ("d", "u1", "cat", "ok"),  # the same annotator changed its answer: the latest wins
        ],
        columns=["item_id", "annotator", "label", "status"],
    )
    assert plurality_answers(annotations) == {"a": {"cat"}, "b": {"cat", "dog"}, "d": {"cat"}}


def test_a_checked_machine_label_is_settled_once_people_agree_with_it_or_lead_against_it_by_the_margin():
    rows = [
        ("right", "ann1", "cat"),
        ("one_against", "ann1", "dog"),
        ("tied", "ann1", "dog"),
        ("tied", "ann2", "cat"),
        ("two_against", "ann1", "dog"),
        ("two_against", "ann2", "dog"),
        ("split_against", "ann1", "dog"),
        ("split_against", "ann2", "bird"),
        ("edited", "ann1", "dog"),
        ("edited", "ann1", "cat"),  # the annotator's latest answer wins
    ]
    answers = pd.DataFrame(rows, columns=["item_id", "annotator", "label"]).assign(status="ok")
    skipped = pd.DataFrame([("skipped", "ann1", None, "skipped")], columns=[*answers.columns[:3], "status"])
    answers = pd.concat([answers, skipped], ignore_index=True)
    items = [
        "right",
        "one_against",
        "tied",
        "two_against",
        "split_against",
        "edited",
        "skipped",
        "unanswered",
    ]
    machine = dict.fromkeys(items, "cat")
    assert unsettled_checks(answers, machine, margin=2) == ["one_against", "split_against"]
    # margin 3: two people against it are not enough on two classes, where slips coincide
    assert unsettled_checks(answers, machine, margin=3) == ["one_against", "two_against", "split_against"]
    assert unsettled_checks(answers, machine, margin=1) == []  # one answer settles: no adjudication


def test_adjudication_asks_one_more_person_about_unsettled_checks_up_to_the_cap(tmp_path):
    from labelgate.spec import load_spec
    from tasks.review import adjudication, checked_machine_labels
    from tests.conftest import make_text_frame, write_job

    spec = load_spec(write_job(tmp_path, make_text_frame(5), review={"mode": "labelstudio"}))
    items = ["one_against", "agreed", "two_against", "at_cap", "not_a_check"]
    routed = pd.DataFrame({"item_id": items, "route": ["audit_sample"] * 4 + ["low_confidence"]})
    rows = pd.DataFrame({"item_id": items, "label": ["sports"] * 4 + ["food"]})
    said = {
        "one_against": ["tech"],
        "agreed": ["sports"],
        "two_against": ["tech", "tech"],
        "at_cap": ["tech", "sports", "tech"],  # 2-1 against: unsettled, but three people answered
        "not_a_check": ["tech"],
    }
    answers = pd.DataFrame(
        [(item, f"u{n}", label, "ok") for item, labels in said.items() for n, label in enumerate(labels)],
        columns=["item_id", "annotator", "label", "status"],
    )
    reviews = Reviews(1, "u", routed, answers, pd.DataFrame(), pd.DataFrame(), dict.fromkeys(items, 1))
    checked = checked_machine_labels(rows, routed)
    assert checked == dict.fromkeys(items[:4], "sports")
    # 3 classes at target 0.95: two people against a machine label settle it (margin 2); at most
    # annotators_per_item + 2 = 3 people per item
    assert adjudication(reviews, checked, spec) == {**dict.fromkeys(items, 1), "one_against": 2}
    strict = spec.model_copy(update={"review": spec.review.model_copy(update={"adjudication_margin": 3})})
    assert adjudication(reviews, checked, strict) == {
        **dict.fromkeys(items, 1),
        "one_against": 2,
        "two_against": 3,
    }


def test_a_label_people_give_is_settled_once_as_sure_as_the_target():
    from tasks.consensus import unsure_labels

    classes = ["cat", "dog"]
    said = {
        "sure_agreed": ["cat"],
        "unsure_agreed": ["cat"],
        "sure_contradicted": ["dog"],
        "two_agreed": ["cat", "cat"],
    }
    answers = pd.DataFrame(
        [(item, f"u{n}", label) for item, labels in said.items() for n, label in enumerate(labels)],
        columns=["item_id", "annotator", "label"],
    )
    prior = {
        "sure_agreed": np.array([0.999, 0.001]),
        "unsure_agreed": np.array([0.6, 0.4]),
        "sure_contradicted": np.array([0.999, 0.001]),
        "two_agreed": np.array([0.6, 0.4]),
        "unanswered": np.array([0.5, 0.5]),
    }
    # answers right 85% of the time: one agreeing answer lifts 0.999 over 0.99, not 0.6 (0.89);
    # two lift 0.6 to 0.98; a sure model never settles an item against the person who answered
    assert unsure_labels(answers, prior, classes, target_accuracy=0.99) == [
        "unsure_agreed",
        "sure_contradicted",
        "two_agreed",
    ]
    assert unsure_labels(answers, prior, classes, target_accuracy=0.95) == [
        "unsure_agreed",
        "sure_contradicted",
    ]
    assert unsure_labels(answers, prior, classes, target_accuracy=0.85) == ["sure_contradicted"]


def test_label_certainty_asks_one_more_person_only_about_labels_people_give(tmp_path):
    from labelgate.spec import load_spec
    from tasks.review import label_certainty
    from tests.conftest import make_text_frame, write_job

    spec = load_spec(write_job(tmp_path, make_text_frame(5), review={"mode": "labelstudio"}))
    items = ["unsure", "sure", "audited", "demoted"]
    routed = pd.DataFrame(
        {"item_id": items, "route": ["low_confidence", "low_confidence", "audit_sample", "gate_demoted"]}
    )
    answers = pd.DataFrame(
        [(item, "u0", "sports", "ok") for item in items], columns=["item_id", "annotator", "label", "status"]
    )
    reviews = Reviews(1, "u", routed, answers, pd.DataFrame(), pd.DataFrame(), dict.fromkeys(items, 1))
    probs = np.array([[0.5, 0.3, 0.2], [0.999, 0.0005, 0.0005], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    # target 0.95: one 85%-right answer agreeing with an unsure model is not enough; the audit
    # sample is adjudicated instead (not here)
    assert label_certainty(reviews, spec, probs, items) == {
        "unsure": 2,
        "sure": 1,
        "audited": 1,
        "demoted": 2,
    }


def test_the_items_asked_for_one_more_annotator_are_the_same_on_a_rerun(tmp_path):
    """Chosen on each item's first k answers: a rerun (or a resumed run) that sees the extra
    answers people gave since asks for no other item."""
    from labelgate.spec import load_spec
    from tasks.review import extra_annotations
    from tests.conftest import make_text_frame, write_job

    spec = load_spec(
        write_job(tmp_path, make_text_frame(5), review={"mode": "labelstudio", "annotators_per_item": 2})
    )
    classes = spec.label_schema.classes
    rng = np.random.default_rng(0)
    items = [f"i{n:02d}" for n in range(40)]
    rows = []
    for item in items:  # two answers each; about a third disagree
        first = classes[rng.integers(3)]
        second = first if rng.random() < 0.65 else classes[rng.integers(3)]
        rows += [(item, "u1", first), (item, "u2", second)]
    answers = pd.DataFrame(rows, columns=["item_id", "annotator", "label"])
    answers["status"], answers["annotation_id"] = "ok", np.arange(len(answers))
    probs = rng.dirichlet(np.ones(3), size=len(items))
    routed = pd.DataFrame({"item_id": items, "route": "low_confidence"})

    def picked(annotations):
        usable = annotations[annotations["status"] == "ok"]
        consensus = consensus_labels(usable, items, classes, pred_probs=probs)
        reviews = Reviews(1, "u", routed, annotations, consensus, pd.DataFrame(), dict.fromkeys(items, 2))
        return {item for item, n in extra_annotations(reviews, spec, probs, items).items() if n == 3}

    chosen = picked(answers)
    assert len(chosen) == 4  # a tenth of 40, among the items whose two answers differ
    third = pd.DataFrame(
        {"item_id": sorted(chosen), "annotator": "u3", "label": classes[0], "status": "ok"}
    ).assign(annotation_id=np.arange(len(chosen)) + len(answers))
    assert picked(pd.concat([answers, third], ignore_index=True)) == chosen


def test_items_every_labeler_has_answered_and_that_want_one_more_are_named():
    """A lone labeler cannot give an item its second opinion (Label Studio never hands anyone the
    same task twice): the waiting message names such items, and only those."""
    items = ["done", "wants_second", "unanswered", "other_person_left"]
    routed = pd.DataFrame({"item_id": items, "route": "low_confidence"})
    answers = pd.DataFrame(
        [("done", "ann"), ("wants_second", "ann"), ("other_person_left", "ann")],
        columns=["item_id", "annotator"],
    ).assign(label="a", status="ok")
    required = {"done": 1, "wants_second": 2, "unanswered": 1, "other_person_left": 2}
    reviews = Reviews(1, "u", routed, answers, pd.DataFrame(), pd.DataFrame(), required)
    assert waiting_on_nobody(reviews) == (["wants_second", "other_person_left"], 1)
    # a second person who has not answered it yet can: then nothing is stuck
    both = pd.concat(
        [answers, pd.DataFrame([{"item_id": "done", "annotator": "bob", "label": "a", "status": "ok"}])]
    )
    reviews = Reviews(1, "u", routed, both, pd.DataFrame(), pd.DataFrame(), required)
    assert waiting_on_nobody(reviews) == ([], 2)
    assert waiting_on_nobody(
        Reviews(1, "u", routed, answers.iloc[:0], pd.DataFrame(), pd.DataFrame(), required)
    ) == ([], 0)


def test_the_settling_margin_keeps_people_s_slips_under_a_fifth_of_the_error_the_target_allows() -> None:
    """Coinciding slips of 90%-right labelers (wrong answers spread over the other classes) must
    happen less often than a fifth of 1 - target; two slips in a row on 2 classes (1 in 100) are
    exactly a fifth of 5%, so 0.95 on 2 classes needs a margin of 3, not 2."""
    assert settling_margin(0.99, 2) == 3 and settling_margin(0.99, 10) == 2
    assert settling_margin(0.95, 2) == 3 and settling_margin(0.95, 3) == 2
    assert settling_margin(0.90, 2) == 2 and settling_margin(0.98, 10) == 2
    for target, k in ((0.95, 2), (0.99, 2), (0.99, 10), (0.9, 3)):
        m = settling_margin(target, k)
        assert 0.1**m / (k - 1) ** (m - 1) < (1 - target) / 5 * (1 - 1e-9)
        assert 0.1 ** (m - 1) / (k - 1) ** (m - 2) >= (1 - target) / 5 * (1 - 1e-9)  # and m is the smallest


def test_the_report_shows_a_class_that_certified_nothing_without_made_up_figures():
    from tasks.report import build_report

    gate = {
        "a": {
            "threshold": 0.91,
            "basis": "class",
            "support": 400,
            "accuracy": 0.995,
            "accuracy_lower": 0.981,
        },
        "b": {
            "threshold": float("inf"),
            "basis": "class",
            "support": 30,
            "accuracy": float("nan"),
            "accuracy_lower": float("nan"),
        },
    }
    text = build_report(
        _rows(), classes=CLASSES, lineage={"thresholds": gate}, version=0, created=True, plot_name=None
    )
    assert "| a | 0.910 | class | 400 | 0.995 | 0.981 |" in text
    assert "| b | none reaches target | class | 30 | – | – |" in text
    assert "nan" not in text
