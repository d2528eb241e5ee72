"""Screening checks on small data with planted answers: each finds what is planted, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.errors import SpecError
from tests.conftest import make_text_frame
from validators.screening import (
    find_personal_data,
    iban_valid,
    luhn_valid,
    run_screening,
    screening_checks,
)


def _texts(n_per_class=20, seed=0):
    frame = make_text_frame(n_per_class, seed=seed)
    return (
        frame["id"].to_numpy(dtype=object),
        frame["text"].to_numpy(dtype=object),
        frame["label"].to_numpy(dtype=object),
    )


def _digits(n=300):
    from sklearn.datasets import load_digits

    X = load_digits().data[:n].copy()
    ids = np.array([f"d{i}" for i in range(n)], dtype=object)
    return ids, X


def _check(name, ids, X, labels, kind, **params):
    return screening_checks.get(name)(ids, X, labels, kind=kind, **params)


def test_exact_duplicates_flag_the_later_copies_only():
    ids, X, labels = _texts()
    X[10] = "  " + X[3].upper() + " "  # same text, other case and spaces
    X[25] = X[3]
    found = _check("exact_duplicates", ids, X, labels, "text")
    assert set(found["item_id"]) == {ids[10], ids[25]}
    assert found["reason"].str.contains(f"exact duplicate of item {ids[3]}").all()


def test_exact_duplicates_on_tabular_rows():
    ids, X = _digits(200)
    X[50] = X[7]
    found = _check("exact_duplicates", ids, X, None, "tabular")
    assert found["item_id"].tolist() == ["d50"]


def test_near_duplicates_of_texts_and_of_rows():
    ids, X, labels = _texts()
    X[30] = X[4] + " indeed"  # one word more
    found = _check("near_duplicates", ids, X, labels, "text", similarity=0.85)
    assert found["item_id"].tolist() == [max(ids[4], ids[30])]

    ids, X = _digits(300)
    rng = np.random.default_rng(0)
    planted = [120, 240]
    for target, source in zip(planted, [11, 12], strict=True):
        X[target] = X[source] + rng.normal(0, 0.05, X.shape[1])
    found = _check("near_duplicates", ids, X, None, "tabular")
    assert set(found["item_id"]) == {"d120", "d240"}


def test_conflicting_duplicates_flag_every_labeled_member_of_a_disagreeing_group():
    ids, X, labels = _texts()
    X[20] = X[5]  # same text ...
    labels[20] = "tech" if labels[5] != "tech" else "food"  # ... other label
    X[40] = X[6]  # same text, same label: not a conflict
    labels[40] = labels[6]
    found = _check("conflicting_duplicates", ids, X, labels, "text")
    assert set(found["item_id"]) == {ids[5], ids[20]}
    assert found["reason"].str.contains("disagree").all()


def test_conflicting_near_duplicates_need_a_similarity_below_one():
    ids, X, labels = _texts()
    X[20] = X[5] + " indeed"
    labels[20] = "tech" if labels[5] != "tech" else "food"
    assert _check("conflicting_duplicates", ids, X, labels, "text").empty
    found = _check("conflicting_duplicates", ids, X, labels, "text", similarity=0.85)
    assert set(found["item_id"]) == {ids[5], ids[20]}


def test_outliers_on_rows_and_on_text_shape():
    ids, X = _digits(300)
    X[77] = np.full(X.shape[1], 60.0)  # far outside the pixel range 0..16
    found = _check("outliers", ids, X, None, "tabular")
    assert found["item_id"].tolist() == ["d77"]

    ids, X, labels = _texts()
    X[9] = "ERROR 0x7f3a: segfault at 0000:0000 [core dumped] " * 8
    found = _check("outliers", ids, X, labels, "text")
    assert found["item_id"].tolist() == [ids[9]]


def test_degenerate_inputs():
    ids, X, labels = _texts()
    X[2], X[8] = "!!! ???", "aaaaaaa"
    found = _check("degenerate_inputs", ids, X, labels, "text")
    assert set(found["item_id"]) == {ids[2], ids[8]}

    ids, X = _digits(100)
    X[33] = 0.0
    assert _check("degenerate_inputs", ids, X, None, "tabular")["item_id"].tolist() == ["d33"]


def test_personal_data_is_found_and_never_copied_into_the_reason():
    ids, X, labels = _texts()
    planted = {
        1: "write to jane.roe@example.org today",
        2: "call +44 20 7946 0958 now",
        3: "call (555) 123-4567",
        4: "paid with 4111 1111 1111 1111",
        5: "iban GB82 WEST 1234 5698 7654 32 A bank",  # a following word is not part of it
    }
    for i, extra in planted.items():
        X[i] = f"{X[i]} {extra}"
    # numbers that are not personal data
    X[6] = X[6] + " in 1999-2000 it made $100,000,000 in 120 minutes"
    X[7] = X[7] + " card 4111 1111 1111 1112"  # fails the Luhn check
    X[11] = X[11] + " code GB82 WEST 1234 5698 7654 33"  # fails mod 97
    found = _check("personal_data", ids, X, labels, "text").set_index("item_id")
    assert set(found.index) == {ids[i] for i in planted}
    for i, kind in zip(planted, ["email", "phone", "phone", "card", "iban"], strict=True):
        reason = found.at[ids[i], "reason"]
        assert kind in reason
        assert "example.org" not in reason and "4111" not in reason and "7946" not in reason


def test_personal_data_kinds_can_be_narrowed_and_are_checked():
    text = "jane.roe@example.org 4111 1111 1111 1111"
    assert [f.split()[0] for f in find_personal_data(text, kinds=["card"])] == ["card"]
    with pytest.raises(SpecError, match="valid kinds"):
        _check("personal_data", np.array(["a"]), np.array([text]), np.array([None]), "text", kinds=["ssn"])


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_clean_data_gives_no_finding_from_any_check():
    ids, X, labels = _texts()
    for name in screening_checks.names():
        if name == "near_duplicates":  # random bags of 6 words from 8 can be near-equal
            continue
        assert _check(name, ids, X, labels, "text").empty, name


def test_run_screening_stacks_findings_with_check_and_action():
    ids, X, labels = _texts()
    X[1] = X[1] + " jane.roe@example.org"
    X[12] = X[0]
    found = run_screening(
        ids,
        X,
        labels,
        kind="text",
        checks=[("personal_data", "block", {}), ("exact_duplicates", "report", {})],
    )
    assert found[["item_id", "check", "action"]].values.tolist() == [
        [ids[1], "personal_data", "block"],
        [ids[12], "exact_duplicates", "report"],
    ]


def test_unknown_check_lists_the_valid_names():
    with pytest.raises(SpecError, match=r"valid names: .*personal_data"):
        screening_checks.get("pii")


def test_apply_screening_quarantines_with_the_reason_and_keeps_personal_data_from_people():
    import pandas as pd

    from tasks.screen import apply_screening, blocking_message

    rows = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "status": ["accepted", "needs_review", "accepted", "accepted"],
            "reason": ["given label passed", "model unsure", "given label passed", "given label passed"],
        }
    )
    found = pd.DataFrame(
        {
            "item_id": ["b", "c", "d"],
            "check": ["personal_data", "conflicting_duplicates", "exact_duplicates"],
            "action": ["quarantine", "quarantine", "report"],
            "reason": [
                "personal data: email at characters 3-20",
                "duplicates disagree",
                "exact duplicate of a",
            ],
        }
    )
    to_review, kept = apply_screening(rows, found)
    assert kept["item_id"].tolist() == ["b"] and kept.at[0, "status"] == "quarantined"
    assert (
        kept.at[0, "reason"]
        == "screening personal_data: personal data: email at characters 3-20 (model unsure)"
    )
    by_id = to_review.set_index("item_id")
    assert by_id.at["c", "status"] == "quarantined" and by_id.at["d", "status"] == "accepted"
    assert sorted([*to_review["item_id"], *kept["item_id"]]) == ["a", "b", "c", "d"]
    assert blocking_message(found, label_set="s") is None
    found.loc[0, "action"] = "block"
    assert "personal_data: 1 item(s) ('b')" in blocking_message(found, label_set="s")
