"""Incremental sync of Label Studio annotations: only new answers are read, none is lost or
counted twice (tasks/annotation_sync.py, with the real label store on a temporary folder and an
in-memory Label Studio that follows ``LabelStudio.fetch_annotations``' cursor contract)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from labelgate.labelstudio import ANNOTATION_COLUMNS
from labelgate.store import LabelStore
from tasks.annotation_sync import (
    OVERLAP,
    changed_rows,
    merge_annotations,
    mirror_key,
    next_cursor,
    reclassify,
    restore_unmoved,
    set_aside_in_mirror,
    sync_annotations,
)

CLASSES = ["cat", "dog"]
SECOND = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FakeLabelStudio:
    """Annotations with update times (µs) on a server clock the test moves.

    ``fetch_annotations`` returns what is visible and updated in ``(since, now - settle]``, and
    the cursor ``max(since, now - settle)``, like the real adapter. ``visible_at`` lets an
    annotation be stamped before its commit is visible (a slow transaction).
    """

    url = "http://ls.test"

    def __init__(self) -> None:
        self.now = 1_000 * SECOND
        self.rows: dict[int, dict] = {}
        self.visible_at: dict[int, int] = {}
        self.reads: list[int] = []
        self.created_at = "2026-11-30T00:00:00Z"

    def project(self, project_id: int) -> dict:
        held = [r for a, r in self.rows.items() if self.visible_at[a] <= self.now]
        skips = sum(r["status"] == "skipped" for r in held)
        return {
            "id": project_id,
            "created_at": self.created_at,
            "total_annotations_number": len(held) - skips,
            "skipped_annotations_number": skips,
        }

    def annotate(self, annotation_id: int, item: str, label: str, *, at: int | None = None, visible=None):
        at = self.now if at is None else at
        self.rows[annotation_id] = {
            "annotation_id": annotation_id,
            "task_id": 100 + int(item[1:]),
            "item_id": item,
            "annotator": f"bot{annotation_id % 3}@x",
            "annotator_id": annotation_id % 3,
            "label": label if label in CLASSES else None,
            "raw_label": label,
            "status": "ok" if label in CLASSES else "unknown_label",
            "created_at": EPOCH + timedelta(microseconds=at),
            "updated_at": EPOCH + timedelta(microseconds=at),
        }
        self.visible_at[annotation_id] = at if visible is None else visible

    def fetch_annotations(self, project_id, *, since=0, classes=None, settle=1.0):
        snapshot = self.now - round(settle * SECOND)
        rows = [
            r
            for a, r in self.rows.items()
            if self.visible_at[a] <= self.now
            and since < (r["updated_at"] - EPOCH) // timedelta(microseconds=1) <= snapshot
        ]
        frame = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
        frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame.attrs["cursor"] = max(int(since), snapshot)
        self.reads.append(len(frame))
        return frame

    def task_items(self, project_id, task_ids):
        wanted = set(task_ids)
        return {r["task_id"]: r["item_id"] for r in self.rows.values() if r["task_id"] in wanted}


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(str(tmp_path / "store"))


def _labels(frame: pd.DataFrame) -> dict[int, str]:
    return dict(zip(frame["annotation_id"], frame["raw_label"], strict=True))


def test_each_sync_reads_only_what_is_new_and_returns_every_answer_once(store):
    ls = FakeLabelStudio()
    for a in range(200):
        ls.annotate(a, f"i{a}", "cat", at=ls.now - (200 - a) * SECOND)
    first = sync_annotations(ls, store, 7, classes=CLASSES)
    assert len(first) == 200 and first.attrs["read"] == 200

    ls.now += 30 * SECOND
    ls.annotate(500, "i500", "dog")
    ls.annotate(501, "i501", "cat")
    ls.now += 5 * SECOND
    second = sync_annotations(ls, store, 7, classes=CLASSES)
    assert second.attrs["read"] == 2  # not the 200 read before
    assert sorted(second["annotation_id"]) == [*range(200), 500, 501]
    assert second["annotation_id"].is_unique

    ls.now += 60 * SECOND  # nothing new: the read is empty, the answers are all still there
    third = sync_annotations(ls, store, 7, classes=CLASSES)
    assert third.attrs["read"] == 0 and len(third) == 202


def test_answers_saved_this_very_second_are_in_and_re_reads_count_once(store):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")  # stamped at the server's current second
    first = sync_annotations(ls, store, 7, classes=CLASSES)
    assert list(first["annotation_id"]) == [1]
    # the next sync re-reads the overlap window: the same answer comes back, is counted once
    ls.now += SECOND // 2
    ls.annotate(2, "i2", "dog")
    second = sync_annotations(ls, store, 7, classes=CLASSES)
    assert second.attrs["read"] == 2 and second.attrs["changed"] == 1
    assert sorted(second["annotation_id"]) == [1, 2]


def test_an_answer_whose_commit_shows_late_is_caught_by_the_next_sync(store):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat", at=ls.now - SECOND // 2, visible=ls.now + SECOND // 2)
    assert sync_annotations(ls, store, 7, classes=CLASSES).empty  # not visible yet
    ls.now += SECOND
    assert list(sync_annotations(ls, store, 7, classes=CLASSES)["annotation_id"]) == [1]


def test_an_edit_replaces_the_answer_and_an_older_copy_never_wins(store):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    sync_annotations(ls, store, 7, classes=CLASSES)
    ls.now += 10 * SECOND
    ls.annotate(1, "i1", "dog")  # edited: same id, newer update time
    edited = sync_annotations(ls, store, 7, classes=CLASSES)
    assert _labels(edited) == {1: "dog"}

    # a stale copy arriving out of order (an old event, an old read) changes nothing
    stale = edited.copy()
    stale["raw_label"] = "cat"
    stale["updated_at"] = stale["updated_at"] - pd.Timedelta(seconds=10)
    assert changed_rows(edited, stale).empty
    assert _labels(merge_annotations(edited, stale)) == {1: "dog"}
    assert _labels(merge_annotations(stale, edited)) == {1: "dog"}
    key = mirror_key(ls.url, 7, ls.created_at)
    store.save_annotation_mirror(key, stale, cursor=0)  # even written straight to the store
    assert _labels(store.annotation_mirror(key)[0]) == {1: "dog"}


def test_a_crash_before_the_commit_loses_nothing(store, monkeypatch):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    sync_annotations(ls, store, 7, classes=CLASSES)
    ls.now += 10 * SECOND
    ls.annotate(2, "i2", "dog")
    ls.now += 10 * SECOND

    def crash(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(store, "save_annotation_mirror", crash)
        with pytest.raises(OSError):
            sync_annotations(ls, store, 7, classes=CLASSES)
    after = sync_annotations(ls, store, 7, classes=CLASSES)
    assert sorted(after["annotation_id"]) == [1, 2]


def test_the_same_answers_written_twice_or_concurrently_count_once(store):
    ls = FakeLabelStudio()
    for a in range(40):
        ls.annotate(a, f"i{a}", "cat", at=ls.now - a * SECOND)
    frame = ls.fetch_annotations(7, settle=0)
    key = mirror_key(ls.url, 7, ls.created_at)
    errors = []

    def write(part):
        try:
            store.save_annotation_mirror(key, part, cursor=ls.now)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(frame.iloc[i::2],)) for i in range(2)]
    threads += [threading.Thread(target=write, args=(frame,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    mirror, cursor = store.annotation_mirror(key)
    assert sorted(mirror["annotation_id"]) == list(range(40)) and cursor == ls.now


def test_a_project_that_reuses_a_deleted_project_s_id_starts_afresh(store):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    sync_annotations(ls, store, 7, classes=CLASSES)
    ls.rows.clear()
    ls.created_at = "2026-11-30T01:00:00Z"  # deleted and made again with the same id
    assert sync_annotations(ls, store, 7, classes=CLASSES).empty
    assert mirror_key(ls.url, 7, "a") != mirror_key(ls.url, 7, "b") != mirror_key("http://other", 7, "b")


def test_labels_are_judged_against_the_current_classes():
    frame = pd.DataFrame(
        {
            "raw_label": ["cat", "bird", None, "cat, dog"],
            "label": ["cat", None, None, None],
            "status": ["ok", "unknown_label", "skipped", "unknown_label"],
        }
    )
    judged = reclassify(frame, ["cat", "dog", "bird"])
    assert judged["status"].tolist() == ["ok", "ok", "skipped", "unknown_label"]
    assert judged["label"].tolist() == ["cat", "bird", None, None]
    assert reclassify(frame, ["dog"])["status"].tolist()[:2] == ["unknown_label", "unknown_label"]


def test_the_cursor_keeps_an_overlap_and_never_goes_back():
    assert next_cursor(0, 10 * SECOND) == 10 * SECOND - OVERLAP
    assert next_cursor(9 * SECOND, 10 * SECOND) == 9 * SECOND
    assert next_cursor(5, 1) == 5


def test_answers_from_the_store_look_like_answers_from_label_studio(store):
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    ls.annotate(2, "i2", "cat, dog")
    sync_annotations(ls, store, 7, classes=CLASSES)
    ls.now += 10 * SECOND
    overlap = sync_annotations(ls, store, 7, classes=CLASSES)  # re-reads the last 2 s, once
    assert overlap.attrs["read"] == 2 and overlap.attrs["changed"] == 0
    ls.now += 10 * SECOND
    frame = sync_annotations(ls, store, 7, classes=CLASSES)  # now all from the mirror
    assert frame.attrs["read"] == 0
    assert frame["label"].tolist() == ["cat", None]
    assert frame["status"].tolist() == ["ok", "unknown_label"]
    assert (
        str(frame["annotator_id"].dtype) == "Int64"
        and str(frame["updated_at"].dtype) == "datetime64[us, UTC]"
    )


def test_an_answer_deleted_in_label_studio_leaves_the_mirror(store):
    ls = FakeLabelStudio()
    for a in range(5):
        ls.annotate(a, f"i{a}", "cat", at=ls.now - 10 * SECOND)
    assert len(sync_annotations(ls, store, 7, classes=CLASSES)) == 5
    ls.now += 10 * SECOND
    del ls.rows[3]  # a labeler deleted it: no incremental read can see that
    after = sync_annotations(ls, store, 7, classes=CLASSES)
    assert after.attrs["resynced"] and sorted(after["annotation_id"]) == [0, 1, 2, 4]
    ls.now += 10 * SECOND
    again = sync_annotations(ls, store, 7, classes=CLASSES)
    assert not again.attrs["resynced"] and again.attrs["read"] == 0 and len(again) == 4


def test_answers_of_a_task_set_aside_move_with_it_and_stay_moved(store):
    """``set_aside_in_mirror`` (review.changed_items: ask_again) moves the mirrored answers of a
    task set aside to the id the task keeps; a re-read of Label Studio's copy, older by the
    move's microsecond, does not move them back, and moving twice changes nothing."""
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    ls.annotate(2, "i2", "dog")
    sync_annotations(ls, store, 7, classes=CLASSES)
    old_task = ls.rows[1]["task_id"]
    assert set_aside_in_mirror(ls, store, 7, {old_task: "i1@abc"}) == 1
    ls.rows[1]["item_id"] = "i1@abc"  # what Label Studio says once the task is patched
    ls.now += SECOND // 2  # the overlap window: the same answer is read again
    after = sync_annotations(ls, store, 7, classes=CLASSES)
    assert after.attrs["read"] == 2  # both were read again
    after = after.set_index("annotation_id")
    assert after.at[1, "item_id"] == "i1@abc" and after.at[2, "item_id"] == "i2"
    assert set_aside_in_mirror(ls, store, 7, {old_task: "i1@abc"}) == 0
    assert set_aside_in_mirror(ls, store, 7, {}) == 0


def test_answers_a_crash_left_half_set_aside_come_back_only_where_the_task_never_moved(store):
    """``restore_unmoved``: the mirror moved the answers of i1's and i2's tasks, then the run
    died after Label Studio had set aside i2's task only. i1's answer comes back to i1; i2's stays
    set aside; an item whose own id has an "@" (i2@mail) is not taken for a set-aside id of i2."""
    ls = FakeLabelStudio()
    ls.annotate(1, "i1", "cat")
    ls.annotate(2, "i2", "dog")
    ls.annotate(3, "i3", "cat")
    ls.rows[3]["item_id"] = "i2@mail"
    sync_annotations(ls, store, 7, classes=CLASSES)
    t1, t2 = ls.rows[1]["task_id"], ls.rows[2]["task_id"]
    assert set_aside_in_mirror(ls, store, 7, {t1: "i1@abc", t2: "i2@def"}) == 2
    ls.rows[2]["item_id"] = "i2@def"  # Label Studio set aside i2's task; the crash came before i1's
    items = ["i1", "i2", "i2@mail"]
    assert restore_unmoved(ls, store, 7, items) == 1
    mirror = sync_annotations(ls, store, 7, classes=CLASSES).set_index("annotation_id")["item_id"]
    assert mirror.to_dict() == {1: "i1", 2: "i2@def", 3: "i2@mail"}
    assert restore_unmoved(ls, store, 7, items) == 0
    assert restore_unmoved(ls, store, 7, ["i9"]) == 0
