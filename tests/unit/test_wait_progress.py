"""The wait's progress bar: its key, its figure and its text (tasks/wait_progress.py). The bar
itself, on a real Prefect server, is read back in
``tests/integration/test_deployed_review.py::test_a_person_accepts_the_batch_as_it_stands_from_the_prefect_ui``."""

from __future__ import annotations

import re

from tasks.wait_progress import artifact_key, move_wait_progress, percent, progress_text


def test_the_key_is_one_prefect_accepts_and_names_the_label_set():
    for label_set, key in [
        ("digits", "review-digits"),
        ("Sentiment_v2.1", "review-sentiment-v2-1"),
        ("__", "review-job"),
    ]:
        assert artifact_key(label_set) == key
        assert re.fullmatch(r"[a-z0-9-]+", key)


def test_the_figure_is_the_share_of_routed_items_with_their_answers():
    assert percent(0, 19) == 0.0
    assert percent(3, 19) == 15.8
    assert percent(19, 19) == 100.0
    assert percent(25, 19) == 100.0  # never past the end
    assert percent(0, 0) == 100.0  # nothing to wait for


def test_the_text_says_how_many_by_whom_and_where():
    text = progress_text(3, 19, "http://ls/projects/7/data", by="review-sync")
    assert text.startswith("**3 of 19 routed items answered** (review-sync, ")
    assert text.endswith("People label them at http://ls/projects/7/data")


def test_no_bar_is_no_error():
    assert move_wait_progress(None, 1, 2, "x") is False
