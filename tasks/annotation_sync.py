"""annotation_sync: read only the annotations that are new since the last sync, whatever the
project's size, and never lose or double-count one.

Every sync of a Label Studio project's answers goes through ``sync_annotations``:

1. the label store's mirror of the project (``LabelStore.annotation_mirror``) gives the
   annotations read so far and the cursor they cover (an update time, microseconds UTC);
2. ``LabelStudio.fetch_annotations(since=cursor)`` reads the annotations created or updated
   after it, reaching one second past the server's clock so that answers saved this very second
   are in this read (a job that just ran its bots sees all their answers);
3. the rows that are new or newer than the stored ones are upserted into the mirror by
   ``annotation_id`` together with the next cursor (one Delta commit), and the merged frame is
   returned.

The next cursor is set ``OVERLAP`` back from the end of the read (``next_cursor``): the
following sync re-reads that window, which catches an annotation whose timestamp came before its
commit became visible, and the upsert makes the re-read rows count once. So:

- an edited annotation comes back with the same id and a newer ``updated_at`` and replaces the
  stored row; an older copy that arrives later never overwrites a newer one;
- a webhook event that arrives twice, out of order or never changes nothing: events only
  trigger a sync, they carry no data that is counted;
- a sync that crashes before its commit leaves the old cursor, so the next one reads the same
  annotations again.

Deleted annotations: an incremental read cannot see them, so after each sync the project's own
count of annotations (skips included, asked after the read) is compared with the mirror's; when
Label Studio holds fewer, some were deleted, and the project is read again in full and replaces
the mirror. (A deletion and a new answer between two syncs balance out in that count; the
deletion is then noticed at a later sync.) The mirror is keyed by server, project id and the
project's creation time (``mirror_key``), so a project that reuses a deleted project's id starts
afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pandas as pd

from labelgate.store import ANNOTATION_SCHEMA

#: How far past the server's clock a sync reads (seconds): answers saved this second are in.
READ_AHEAD = 1.0
#: How far back from the end of a read the next one starts (microseconds): READ_AHEAD plus
#: one second for annotations stamped before their commit is visible.
OVERLAP = 2_000_000

_COLUMNS = ANNOTATION_SCHEMA.names


def mirror_key(url: str, project_id: int, created_at: object) -> str:
    """The mirror's name for one project: ``p<id>-<hash of server URL and creation time>``."""
    digest = hashlib.sha256(f"{url.rstrip('/')}|{project_id}|{created_at}".encode()).hexdigest()[:12]
    return f"p{int(project_id)}-{digest}"


def next_cursor(previous: int, read_until: int, *, overlap: int = OVERLAP) -> int:
    """The cursor to store after a read that covered ``(previous, read_until]``: ``overlap``
    microseconds back from its end, never behind ``previous``."""
    return max(int(previous), int(read_until) - int(overlap))


def changed_rows(known: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``fresh`` that the mirror ``known`` lacks, or holds with an older ``updated_at``
    (one row per annotation id: the newest of ``fresh``)."""
    fresh = _latest(fresh)
    if known.empty or fresh.empty:
        return fresh
    stored = known.drop_duplicates("annotation_id", keep="last").set_index("annotation_id")["updated_at"]
    before = fresh["annotation_id"].map(stored)
    return fresh[before.isna() | (fresh["updated_at"] > before)].reset_index(drop=True)


def merge_annotations(known: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """One row per ``annotation_id``: the one with the newest ``updated_at`` from either frame
    (on a tie, the one from ``fresh``). Ordered by ``updated_at``, then ``annotation_id``."""
    frames = [f[_COLUMNS] for f in (known, fresh) if not f.empty]
    if not frames:
        return _empty()
    both = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return _latest(both)


def reclassify(annotations: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """``label`` and ``status`` for the job's current classes, from the stored ``raw_label``.

    A class list can change between syncs (a spec edit); rows read earlier are judged again:
    a single choice in ``classes`` is ``"ok"``, anything else that was chosen is
    ``"unknown_label"``; skipped and empty answers keep their status.
    """
    frame = annotations.copy()
    chosen = frame["status"].isin(["ok", "unknown_label"])
    valid = chosen & frame["raw_label"].isin(set(classes))
    labels = [raw if ok else None for raw, ok in zip(frame["raw_label"], valid, strict=True)]
    frame["label"] = pd.Series(labels, index=frame.index, dtype=object)
    status = [
        ("ok" if ok else "unknown_label") if pick else old
        for old, pick, ok in zip(frame["status"], chosen, valid, strict=True)
    ]
    frame["status"] = pd.Series(status, index=frame.index, dtype=object)
    return frame


def sync_annotations(client: Any, store: Any, project_id: int, *, classes: Sequence[str]) -> pd.DataFrame:
    """Every annotation of the project, reading from Label Studio only those new since the last
    sync (see the module docstring).

    Parameters
    ----------
    client
        The Label Studio adapter (``labelgate.labelstudio.LabelStudio`` or a fake with ``url``,
        ``project`` and ``fetch_annotations``).
    store
        The label store (``labelgate.store.LabelStore`` or a fake with ``annotation_mirror`` and
        ``save_annotation_mirror``).
    project_id
        The Label Studio project.
    classes
        The job's classes: labels outside them get status ``"unknown_label"``.

    Returns
    -------
    pandas.DataFrame
        Columns of ``LabelStudio.fetch_annotations``, one row per annotation id, ordered by
        ``updated_at``; ``attrs["read"]`` holds how many rows this call read from Label Studio
        and ``attrs["changed"]`` how many of them were new or newer.
    """
    key = mirror_key(client.url, project_id, client.project(project_id).get("created_at"))
    known, cursor = store.annotation_mirror(key)
    fresh = client.fetch_annotations(project_id, since=cursor, classes=classes, settle=-READ_AHEAD)
    changed = changed_rows(known, fresh)
    cursor_after = next_cursor(cursor, fresh.attrs["cursor"])
    if not changed.empty or cursor_after > cursor:
        store.save_annotation_mirror(key, changed, cursor=cursor_after)
    merged = merge_annotations(known, changed)
    read, resynced = len(fresh), False
    if len(merged) > held_annotations(client.project(project_id)):
        # asked after the read, Label Studio holds fewer answers than the mirror: some were
        # deleted. Read them all again and replace the mirror.
        everything = client.fetch_annotations(project_id, classes=classes, settle=-READ_AHEAD)
        merged = _latest(everything)
        store.save_annotation_mirror(
            key, merged, cursor=next_cursor(0, everything.attrs["cursor"]), replace=True
        )
        read, resynced = read + len(merged), True
    merged = reclassify(_normalise(merged), classes)
    merged.attrs.update(read=read, changed=len(changed), resynced=resynced)
    return merged


def set_aside_in_mirror(client: Any, store: Any, project_id: int, moved: dict[int, str]) -> int:
    """Move the mirrored answers of tasks about to be set aside (``LabelStudio.supersede_tasks``:
    task id -> the id it keeps) to that id, before Label Studio moves them: a crash in between
    leaves the mirror ahead, and the rerun sets the same tasks aside again. The rows go in as
    edits (``updated_at`` one microsecond later), since the mirror keeps only newer rows; Label
    Studio's own copies, read later, carry the same id. Returns how many rows moved."""
    if not moved:
        return 0
    key = mirror_key(client.url, project_id, client.project(project_id).get("created_at"))
    known, cursor = store.annotation_mirror(key)
    rows = known[known["task_id"].isin(list(moved))].copy()
    rows = rows[rows["item_id"] != rows["task_id"].map(moved)]
    if rows.empty:
        return 0
    rows["item_id"] = rows["task_id"].map(moved)
    rows["updated_at"] = pd.to_datetime(rows["updated_at"], utc=True) + pd.Timedelta(microseconds=1)
    store.save_annotation_mirror(key, rows, cursor=cursor)
    return len(rows)


def restore_unmoved(client: Any, store: Any, project_id: int, item_ids: Sequence[str]) -> int:
    """Undo the mirror half of a set-aside whose Label Studio half never happened: a crash
    between :func:`set_aside_in_mirror` and ``LabelStudio.supersede_tasks``, then a data file
    that changed the item back, leaves the task with the item's own id in Label Studio and its
    answers under the set-aside id in the mirror, where nobody would find them. For mirrored
    answers kept under a set-aside id of one of ``item_ids`` (``item@hash``), asks Label Studio
    which item their task carries now (one export call per 500 tasks) and, where it is the item
    itself, moves them back (as edits, like :func:`set_aside_in_mirror`). Returns how many
    rows moved back."""
    key = mirror_key(client.url, project_id, client.project(project_id).get("created_at"))
    known, cursor = store.annotation_mirror(key)
    if known.empty:
        return 0
    ids = set(map(str, item_ids))
    kept = known["item_id"].astype(str)
    base = kept.str.rsplit("@", n=1).str[0]
    rows = known[kept.str.contains("@", regex=False) & base.isin(ids) & (base != kept)].copy()
    if rows.empty:
        return 0
    carried = client.task_items(project_id, sorted(set(rows["task_id"].astype(int))))
    now = rows["task_id"].astype(int).map(carried)
    rows = rows[now.to_numpy() == base[rows.index].to_numpy()]
    if rows.empty:
        return 0
    rows["item_id"] = base[rows.index]
    rows["updated_at"] = pd.to_datetime(rows["updated_at"], utc=True) + pd.Timedelta(microseconds=1)
    store.save_annotation_mirror(key, rows, cursor=cursor)
    return len(rows)


def held_annotations(project: dict[str, Any]) -> int:
    """How many annotations a project holds, skips included (``LabelStudio.project``)."""
    return int(project.get("total_annotations_number") or 0) + int(
        project.get("skipped_annotations_number") or 0
    )


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per annotation id, the newest; ties go to the later row."""
    ordered = frame.sort_values(["updated_at", "annotation_id"], kind="stable")
    return ordered.drop_duplicates("annotation_id", keep="last").reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return _normalise(ANNOTATION_SCHEMA.empty_table().to_pandas())


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes of ``LabelStudio.fetch_annotations``: int64 ids, nullable ``annotator_id``,
    text columns as objects with None for missing, UTC timestamps."""
    frame = frame.astype({"annotation_id": "int64", "task_id": "int64", "annotator_id": "Int64"})
    for column in ("item_id", "annotator", "label", "raw_label", "status"):
        values = frame[column].astype(object)
        frame[column] = values.where(values.notna(), None)
    for column in ("created_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame
