"""The label store on real Delta tables in a temporary folder."""

import pandas as pd
import pytest

from labelgate.errors import StoreError
from labelgate.store import LABEL_SET_SCHEMA, LabelStore, parse_ref


def _rows(labels, statuses):
    n = len(labels)
    return pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "label": labels,
            "status": statuses,
            "source": ["given"] * n,
            "quality": [0.9] * n,
            "confidence": [0.8] * n,
            "given_label": labels,
            "predicted_label": labels,
            "reason": ["ok"] * n,
        }
    )[LABEL_SET_SCHEMA.names]


def test_versions_time_travel_and_lineage(isolated_store):
    store = LabelStore()
    v0, created0 = store.publish(
        "pets", _rows(["cat", "dog"], ["accepted", "accepted"]), lineage={"run_key": "a", "job": "j1"}
    )
    v1, created1 = store.publish(
        "pets", _rows(["cat", "cat"], ["accepted", "quarantined"]), lineage={"run_key": "b", "job": "j2"}
    )
    assert (v0, v1, created0, created1) == (0, 1, True, True)
    assert store.read("pets", 0)["label"].tolist() == ["cat", "dog"]
    assert store.read("pets")["label"].tolist() == ["cat", "cat"]
    assert store.read("pets", accepted_only=True)["item_id"].tolist() == ["i0"]
    assert store.lineage("pets", 1)["parent_version"] == 0
    assert store.lineage("pets", 0)["job"] == "j1"
    assert [v["version"] for v in store.versions("pets")] == [1, 0]
    assert store.names() == ["pets"]


def test_same_run_key_publishes_nothing_new(isolated_store):
    store = LabelStore()
    rows = _rows(["cat"], ["accepted"])
    store.publish("pets", rows, lineage={"run_key": "same"})
    version, created = store.publish("pets", rows, lineage={"run_key": "same"})
    assert (version, created) == (0, False)
    assert store.latest_version("pets") == 0


def test_diff_lists_changed_added_removed(isolated_store):
    store = LabelStore()
    store.publish("pets", _rows(["cat", "dog", "cow"], ["accepted"] * 3), lineage={"run_key": "a"})
    rows = _rows(["cat", "cat"], ["accepted", "accepted"])
    rows.loc[1, "item_id"] = "i9"
    store.publish("pets", rows, lineage={"run_key": "b"})
    diff = store.diff("pets", 0, 1).set_index("item_id")["change"].to_dict()
    assert diff == {"i1": "removed", "i2": "removed", "i9": "added"}


def test_unknown_set_and_version_are_clear_errors(isolated_store):
    store = LabelStore()
    with pytest.raises(StoreError, match="no label set 'nope'"):
        store.read("nope")
    store.publish("pets", _rows(["cat"], ["accepted"]), lineage={})
    with pytest.raises(StoreError, match=r"has no version 5; versions are 0\.\.0"):
        store.read("pets", 5)
    with pytest.raises(StoreError, match="must be an integer"):
        parse_ref("pets@latest")


def test_event_log_is_append_only_and_idempotent(isolated_store):
    store = LabelStore()
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "label_set": "pets",
            "item_id": ["i0", "i1"],
            "label": ["cat", "dog"],
            "source": "model",
            "actor": "model:abc",
            "confidence": [0.9, 0.8],
            "job": "j",
            "run_key": "k",
            "observed_at": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )
    assert store.record_events(events) == 2
    assert store.record_events(events) == 0
    assert len(store.events(label_set="pets")) == 2


def test_the_items_a_run_waits_for_are_kept_until_forgotten(isolated_store):
    store = LabelStore()
    assert store.awaited("run-1") is None  # a run that recorded nothing
    assert store.awaited_by_any_run() == frozenset()
    store.save_awaited("run-1", ["b", "a", "a"])
    store.save_awaited("run-2", ["c"])
    assert store.awaited("run-1") == {"a", "b"} and store.awaited("run-2") == {"c"}
    store.save_awaited("run-1", ["d"])  # its next wait replaces the record
    assert store.awaited("run-1") == {"d"}
    assert store.awaited_by_any_run() == {"c", "d"}  # what no run of the job may retire
    store.forget_awaited("run-1")
    store.forget_awaited("run-1")  # twice is no error
    assert store.awaited("run-1") is None and store.awaited("run-2") == {"c"}
    assert store.awaited_by_any_run() == {"c"}
    assert store.names() == []  # no label set appears
    # a run's record names its Label Studio project: another job's waiting run keeps only its own
    # project's tasks on offer; a record without one (written before) counts for every project
    store.save_awaited("run-3", ["e"], project=7)
    store.save_awaited("run-4", ["f"], project=8)
    assert store.awaited("run-3") == {"e"}
    assert store.awaited_by_any_run(7) == {"c", "e"} and store.awaited_by_any_run(8) == {"c", "f"}
    assert store.awaited_by_any_run() == {"c", "e", "f"}
    with open(f"{store.root}/_awaiting/run-2.json", "w") as handle:
        handle.write("{not json")
    with pytest.raises(StoreError, match="run-2 waits for"):
        store.awaited("run-2")
    store.save_awaited("run-2", ["c"])  # a broken record is replaced
    assert store.awaited("run-2") == {"c"} and store.progress_artifact("run-2") is None
    # the wait's progress bar (tasks/wait_progress.py) stays with the run's next records
    store.save_awaited("run-5", ["g"], project=7, progress_artifact="bar-1")
    store.save_awaited("run-5", ["g", "h"], project=7)  # a rerun's routing records again
    assert store.awaited("run-5") == {"g", "h"} and store.progress_artifact("run-5") == "bar-1"
    store.forget_awaited("run-5")
    assert store.progress_artifact("run-5") is None
    # a bar names its wait, and keeps it through the next records
    store.save_awaited("run-6", ["i"], progress_artifact="bar-2", wait="review")
    store.save_awaited("run-6", ["i", "j"])
    assert store.progress_bar("run-6") == ("bar-2", "review")
    store.save_awaited("run-6", ["k"], progress_artifact="bar-3", wait="review-gate1")
    assert store.progress_bar("run-6") == ("bar-3", "review-gate1")
    assert store.progress_bar("run-7") == (None, None)


def test_learning_batches_are_kept_per_round_and_a_broken_record_is_a_clear_error(isolated_store):
    store = LabelStore()
    assert store.learning_batches("k") == {}
    store.save_learning_batch("k", 0, ["b", "a"])
    store.save_learning_batch("k", 1, ["c"])
    assert store.learning_batches("k") == {0: ["a", "b"], 1: ["c"]}
    with open(f"{store.root}/_learning/k.json", "w") as handle:
        handle.write('["not", "an object"]')
    with pytest.raises(StoreError, match="learning batches k"):
        store.learning_batches("k")


def test_people_s_answers_are_logged_once_whichever_run_reads_them(isolated_store):
    from tasks.review import Reviews, human_events

    answers = pd.DataFrame(
        {
            "annotation_id": [11, 12, 13],
            "item_id": ["i0", "i0", "i1"],
            "annotator": ["ann@x", "bob@x", "ann@x"],
            "label": ["cat", "dog", "dog"],
            "status": ["ok", "ok", "skipped"],
            "updated_at": ["2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", "2026-01-01T10:06:00Z"],
        }
    )
    reviews = Reviews(3, "http://ls/projects/3/data", pd.DataFrame(), answers, pd.DataFrame(), pd.DataFrame())
    store = LabelStore()
    first = human_events(reviews, label_set="pets", job="j", key="run-a")
    assert first["actor"].tolist() == ["ann@x", "bob@x"]  # the skipped task is no label
    assert store.record_events(first) == 2
    # the same job run again under another spec or code version: same answers, nothing new
    assert store.record_events(human_events(reviews, label_set="pets", job="j", key="run-b")) == 0
    # an edit is a new observation; the same annotation id in another project is another one
    edited = answers.assign(updated_at=["2026-01-02T09:00:00Z", *answers["updated_at"][1:]])
    again = Reviews(3, "http://ls/projects/3/data", pd.DataFrame(), edited, pd.DataFrame(), pd.DataFrame())
    other = Reviews(4, "http://ls/projects/4/data", pd.DataFrame(), answers, pd.DataFrame(), pd.DataFrame())
    assert store.record_events(human_events(again, label_set="pets", job="j", key="run-b")) == 1
    assert store.record_events(human_events(other, label_set="pets", job="j", key="run-b")) == 2
    log = store.events(label_set="pets")
    assert len(log) == 5 and set(log["run_key"]) == {"run-a", "run-b"}
