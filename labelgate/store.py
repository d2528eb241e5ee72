"""The label store: versioned label sets and an append-only label-event log, on Delta Lake.

Layout below the store root (a local folder or an object-store URI)::

    <root>/<label_set>/        one Delta table per label set; each publish is a new table version
    <root>/_label_events/      every label observation (model, given, human), append-only
    <root>/_models/<set>/      fitted models, saved with skops, named by content hash
    <root>/_review_sync/<key>/ the annotations read so far from one Label Studio project, with
                               the incremental-sync cursor in each commit (``annotation_mirror``)
    <root>/_awaiting/<run>.json the item ids a suspended flow run waits for (``save_awaited``)
    <root>/_learning/<key>.json each learning round's batch as first drawn (``learning_batches``)

A label-set version is the Delta table version, so any earlier version can be read back (time
travel). The lineage of a version lives in its commit metadata under ``labelgate.lineage``.
This module is the only one that talks to Delta Lake.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from labelgate.errors import StoreError
from labelgate.settings import get_settings

LINEAGE_KEY = "labelgate.lineage"
EVENTS = "_label_events"
STATUSES = ("accepted", "quarantined", "needs_review")

LABEL_SET_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("label", pa.string()),
        ("status", pa.string()),
        ("source", pa.string()),
        ("quality", pa.float64()),
        ("confidence", pa.float64()),
        ("given_label", pa.string()),
        ("predicted_label", pa.string()),
        ("reason", pa.string()),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("label_set", pa.string()),
        ("item_id", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("actor", pa.string()),
        ("confidence", pa.float64()),
        ("job", pa.string()),
        ("run_key", pa.string()),
        ("observed_at", pa.timestamp("us", tz="UTC")),
    ]
)


REVIEW_SYNC = "_review_sync"
AWAITING = "_awaiting"
LEARNING = "_learning"
CURSOR_KEY = "labelgate.review_cursor"
#: Columns of the annotation mirror, as ``LabelStudio.fetch_annotations`` returns them.
ANNOTATION_SCHEMA = pa.schema(
    [
        ("annotation_id", pa.int64()),
        ("task_id", pa.int64()),
        ("item_id", pa.string()),
        ("annotator", pa.string()),
        ("annotator_id", pa.int64()),
        ("label", pa.string()),
        ("raw_label", pa.string()),
        ("status", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
_COMMIT_ATTEMPTS = 8


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"digits@3"`` -> ``("digits", 3)``; ``"digits"`` -> ``("digits", None)`` (latest)."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    try:
        return name, int(version)
    except ValueError:
        raise StoreError(f"bad label-set reference {ref!r}: the version after @ must be an integer") from None


class LabelStore:
    """Label sets as Delta tables below ``root``."""

    def __init__(self, root: str | None = None, *, storage_options: dict[str, str] | None = None):
        settings = get_settings()
        self.root = str(root or settings.store).rstrip("/")
        self.storage_options = (
            storage_options if storage_options is not None else dict(settings.storage_options)
        )

    # -- paths ---------------------------------------------------------------------------
    def uri(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _table(self, name: str, version: int | None = None) -> DeltaTable:
        try:
            table = DeltaTable(self.uri(name), storage_options=self.storage_options or None)
        except TableNotFoundError:
            known = ", ".join(self.names()) or "none yet"
            raise StoreError(f"no label set {name!r} in store {self.root} (label sets: {known})") from None
        if version is not None:
            latest = table.version()
            if not 0 <= version <= latest:
                raise StoreError(f"label set {name!r} has no version {version}; versions are 0..{latest}")
            table.load_as_version(version)
        return table

    # -- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Names of the label sets in the store."""
        fs, path = fsspec.core.url_to_fs(self.root, **self.storage_options)
        if not fs.exists(path):
            return []
        names = []
        for entry in fs.ls(path, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("_") and fs.exists(f"{entry}/_delta_log"):
                names.append(name)
        return sorted(names)

    def latest_version(self, name: str) -> int | None:
        """The newest version of ``name``, or None if the set does not exist yet."""
        try:
            return DeltaTable(self.uri(name), storage_options=self.storage_options or None).version()
        except TableNotFoundError:
            return None

    def read(self, name: str, version: int | None = None, *, accepted_only: bool = False) -> pd.DataFrame:
        """Rows of one version (latest by default). ``accepted_only`` is the accepted view:
        quarantined and unreviewed items are left out."""
        frame = self._table(name, version).to_pyarrow_table().to_pandas()
        if accepted_only:
            frame = frame[frame["status"] == "accepted"]
        return frame.sort_values("item_id", kind="stable").reset_index(drop=True)

    def arrow_dataset(self, name: str, version: int | None = None):
        """One version (latest by default) as a ``pyarrow.dataset.Dataset``, to stream it in
        record batches without loading it whole (the API's downloads)."""
        return self._table(name, version).to_pyarrow_dataset()

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, newest first: version, timestamp, operation, lineage."""
        out = []
        for commit in self._table(name).history():
            out.append(
                {
                    "version": commit["version"],
                    "timestamp": datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
                    "rows": (commit.get("operationMetrics") or {}).get("num_added_rows"),
                    "lineage": json.loads(commit.get(LINEAGE_KEY) or "{}"),
                }
            )
        return out

    def lineage(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The lineage stored with one version (latest by default)."""
        wanted = self._table(name).version() if version is None else version
        for entry in self.versions(name):
            if entry["version"] == wanted:
                return entry["lineage"]
        raise StoreError(f"label set {name!r} has no version {version}")

    def diff(self, name: str, a: int, b: int) -> pd.DataFrame:
        """Items whose label or status differ between versions ``a`` and ``b`` (or that exist in
        only one). Columns: item_id, change, label_a, status_a, label_b, status_b."""
        left = self.read(name, a)[["item_id", "label", "status"]]
        right = self.read(name, b)[["item_id", "label", "status"]]
        both = left.merge(right, on="item_id", how="outer", suffixes=("_a", "_b"), indicator=True)
        change = pd.Series("changed", index=both.index)
        change[both["_merge"] == "left_only"] = "removed"
        change[both["_merge"] == "right_only"] = "added"
        same = (both["label_a"].fillna("") == both["label_b"].fillna("")) & (
            both["status_a"] == both["status_b"]
        )
        both["change"] = change
        both = both[~(same & (both["_merge"] == "both"))]
        cols = ["item_id", "change", "label_a", "status_a", "label_b", "status_b"]
        return both[cols].sort_values("item_id").reset_index(drop=True)

    # -- writing -------------------------------------------------------------------------
    def publish(self, name: str, rows: pd.DataFrame, *, lineage: dict[str, Any]) -> tuple[int, bool]:
        """Write ``rows`` as the new version of label set ``name``, with ``lineage`` in the commit.

        One Delta commit: readers see the whole new version or the old one, never half. When the
        latest version came from the same ``lineage["run_key"]`` and holds the same rows (a rerun
        after a crash, or the same job on the same data and answers), nothing is written and that
        version is returned.

        Returns ``(version, created)``.
        """
        missing = [c for c in LABEL_SET_SCHEMA.names if c not in rows.columns]
        if missing:
            raise StoreError(f"cannot publish {name!r}: rows lack column(s) {missing}")
        latest = self.latest_version(name)
        if latest is not None:
            previous = self.lineage(name, latest)
            same_run = lineage.get("run_key") and previous.get("run_key") == lineage["run_key"]
            if same_run and previous.get("content_hash") == content_hash(rows):
                return latest, False
        lineage = {
            **lineage,
            "parent_version": latest,
            "published_at": _now().isoformat(),
            "content_hash": content_hash(rows),
        }
        table = pa.Table.from_pandas(
            rows[LABEL_SET_SCHEMA.names], schema=LABEL_SET_SCHEMA, preserve_index=False
        )
        write_deltalake(
            self.uri(name),
            table,
            mode="overwrite",
            storage_options=self.storage_options or None,
            commit_properties=CommitProperties(
                custom_metadata={LINEAGE_KEY: json.dumps(lineage, default=str, sort_keys=True)}
            ),
        )
        return self._table(name).version(), True

    def record_events(self, events: pd.DataFrame) -> int:
        """Append label observations to the event log; an ``event_id`` already there is skipped,
        so a rerun never records the same observation twice. Returns rows inserted."""
        if events.empty:
            return 0
        table = pa.Table.from_pandas(events[EVENT_SCHEMA.names], schema=EVENT_SCHEMA, preserve_index=False)
        uri = self.uri(EVENTS)
        try:
            log = DeltaTable(uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            write_deltalake(uri, table, mode="error", storage_options=self.storage_options or None)
            return table.num_rows
        metrics = (
            log.merge(table, predicate="t.event_id = s.event_id", source_alias="s", target_alias="t")
            .when_not_matched_insert_all()
            .execute()
        )
        return int(metrics.get("num_target_rows_inserted", 0))

    def events(self, *, label_set: str | None = None) -> pd.DataFrame:
        """The label-event log, optionally for one label set."""
        try:
            frame = DeltaTable(self.uri(EVENTS), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return pd.DataFrame(columns=EVENT_SCHEMA.names)
        data = frame.to_pyarrow_table().to_pandas()
        if label_set is not None:
            data = data[data["label_set"] == label_set]
        return data.reset_index(drop=True)

    # -- review sync state ----------------------------------------------------------------
    def annotation_mirror(self, key: str) -> tuple[pd.DataFrame, int]:
        """The annotations synced so far from one Label Studio project, and the sync cursor.

        ``key`` names the project (``tasks.annotation_sync.mirror_key``). Returns one row per
        annotation id (columns of ``ANNOTATION_SCHEMA``) and the cursor stored with the same
        table version, so the rows cover every annotation updated up to the cursor. A project
        never synced gives an empty frame and cursor 0.
        """
        try:
            table = DeltaTable(self.uri(f"{REVIEW_SYNC}/{key}"), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return ANNOTATION_SCHEMA.empty_table().to_pandas(), 0
        version = table.version()
        cursor = next(
            (int(c.get(CURSOR_KEY) or 0) for c in table.history(8) if c.get("version") == version), 0
        )
        frame = table.to_pyarrow_table().to_pandas()
        # writers that raced may both have inserted a row: the newest copy of each id counts
        frame = frame.sort_values(["updated_at", "annotation_id"], kind="stable")
        frame = frame.drop_duplicates("annotation_id", keep="last").reset_index(drop=True)
        return frame, cursor

    def save_annotation_mirror(
        self, key: str, annotations: pd.DataFrame, *, cursor: int, replace: bool = False
    ) -> int:
        """Upsert ``annotations`` into the mirror of ``key`` and record ``cursor``, in one commit.

        A row replaces the stored row of its ``annotation_id`` only when its ``updated_at`` is
        newer, so an old copy that comes late never overwrites a newer one, and the same rows
        written twice change nothing. The cursor goes into the same Delta commit as the rows,
        so a crash can never leave a cursor ahead of its rows; with no rows, the commit only
        moves the cursor. ``replace=True`` overwrites the mirror with ``annotations`` (a full
        re-read, after annotations were deleted in Label Studio). A writer whose commit
        conflicts with another's merges again. Two merges that only insert can both commit the
        same new row (Delta lets appends through), so ``annotation_mirror`` keeps the newest
        copy of each id. Returns the rows inserted or updated.
        """
        table = pa.Table.from_pandas(
            annotations[ANNOTATION_SCHEMA.names], schema=ANNOTATION_SCHEMA, preserve_index=False
        )
        uri = self.uri(f"{REVIEW_SYNC}/{key}")
        commit = CommitProperties(custom_metadata={CURSOR_KEY: str(int(cursor))})
        options = self.storage_options or None
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                if replace:
                    write_deltalake(
                        uri,
                        table,
                        mode="overwrite",
                        schema_mode="overwrite",
                        storage_options=options,
                        commit_properties=commit,
                    )
                    return table.num_rows
                try:
                    mirror = DeltaTable(uri, storage_options=options)
                except TableNotFoundError:
                    write_deltalake(
                        uri, table, mode="error", storage_options=options, commit_properties=commit
                    )
                    return table.num_rows
                if table.num_rows == 0:  # nothing new: just move the cursor (an empty commit)
                    write_deltalake(
                        uri, table, mode="append", storage_options=options, commit_properties=commit
                    )
                    return 0
                metrics = (
                    mirror.merge(
                        table,
                        predicate="t.annotation_id = s.annotation_id",
                        source_alias="s",
                        target_alias="t",
                        commit_properties=commit,
                    )
                    .when_matched_update_all(predicate="s.updated_at > t.updated_at")
                    .when_not_matched_insert_all()
                    .execute()
                )
                return int(metrics.get("num_target_rows_inserted", 0)) + int(
                    metrics.get("num_target_rows_updated", 0)
                )
            except (DeltaError, FileExistsError) as exc:  # a concurrent commit or create
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise StoreError(
                        f"could not save the annotation mirror {uri} after {_COMMIT_ATTEMPTS} attempts "
                        f"(concurrent writers): {exc}"
                    ) from None
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- small JSON records (runs waiting for people, learning batches) --------------------
    def _read_record(self, uri: str, what: str) -> dict | None:
        """The JSON object at ``uri``, or None when there is none; a StoreError names ``what``
        when it cannot be read."""
        try:
            record = json.loads(self.load_bytes(uri))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {what} ({uri}): {exc!r}") from None
        if not isinstance(record, dict):
            raise StoreError(f"cannot read {what} ({uri}): not a JSON object")
        return record

    def _awaited_uri(self, flow_run_id: str) -> str:
        return f"{self.root}/{AWAITING}/{flow_run_id}.json"

    def save_awaited(
        self,
        flow_run_id: str,
        item_ids: Iterable[str],
        *,
        project: int | None = None,
        progress_artifact: str | None = None,
        wait: str | None = None,
    ) -> None:
        """Record the items whose answers a flow run waits for before it suspends, so that the
        review-sync and the webhook receiver check those tasks only (``flows/review_sync.py``):
        a task of the same project that this run no longer asks about does not keep it waiting.
        ``project``: the Label Studio project the tasks are in; ``progress_artifact``: the id of
        the progress bar on the run's page (``tasks.wait_progress``), which the sync updates, of
        the ``wait`` named (``flows.review_round``'s wait key). A later record of the same run
        replaces this one, and keeps its bar and wait unless given another."""
        if progress_artifact is None:
            try:
                progress_artifact, wait = self.progress_bar(flow_run_id)
            except StoreError:  # a broken record is replaced, bar and all
                progress_artifact = wait = None
        record = {"flow_run_id": str(flow_run_id), "item_ids": sorted(map(str, item_ids))}
        if project is not None:
            record["project"] = int(project)
        if progress_artifact is not None:
            record["progress_artifact"] = str(progress_artifact)
            if wait is not None:
                record["wait"] = str(wait)
        self.save_bytes(self._awaited_uri(flow_run_id), json.dumps(record).encode())

    def _awaited_record(self, flow_run_id: str) -> tuple[frozenset[str], int | None] | None:
        what = f"the items flow run {flow_run_id} waits for"
        record = self._read_record(self._awaited_uri(flow_run_id), what)
        if record is None:
            return None
        try:
            project = record.get("project")
            return frozenset(map(str, record["item_ids"])), None if project is None else int(project)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"cannot read {what}: {exc!r}") from None

    def awaited(self, flow_run_id: str) -> frozenset[str] | None:
        """The items recorded by ``save_awaited`` for the run, or None when it recorded none."""
        record = self._awaited_record(flow_run_id)
        return None if record is None else record[0]

    def progress_bar(self, flow_run_id: str) -> tuple[str | None, str | None]:
        """The progress artifact id recorded by ``save_awaited`` and the wait it belongs to,
        each None when there is none."""
        record = self._read_record(
            self._awaited_uri(flow_run_id), f"the items flow run {flow_run_id} waits for"
        )
        record = record or {}
        artifact, wait = record.get("progress_artifact"), record.get("wait")
        return (None if artifact is None else str(artifact)), (None if wait is None else str(wait))

    def progress_artifact(self, flow_run_id: str) -> str | None:
        """The progress artifact id recorded by ``save_awaited``, or None."""
        return self.progress_bar(flow_run_id)[0]

    def awaiting_runs(self) -> list[str]:
        """The flow run ids that have a record (``save_awaited``), sorted."""
        fs, path = fsspec.core.url_to_fs(f"{self.root}/{AWAITING}", **self.storage_options)
        if not fs.exists(path):
            return []
        names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))
        return sorted(name.removesuffix(".json") for name in names if name.endswith(".json"))

    def awaited_by_any_run(self, project: int | None = None) -> frozenset[str]:
        """Every item some flow run's record (``save_awaited``) says it waits for in ``project``
        (every project when None): the tasks a run of the same job must not retire
        (``LabelStudio.retire_tasks``). A record left by a run that was cancelled or crashed
        counts too until the next review-sync removes it (``forget_finished_waits`` in
        ``flows/review_sync.py``), which only keeps a task on offer; so does a record that names
        no project."""
        items: set[str] = set()
        for run_id in self.awaiting_runs():
            record = self._awaited_record(run_id)
            if record is not None and (project is None or record[1] in (None, int(project))):
                items |= record[0]
        return frozenset(items)

    def forget_awaited(self, flow_run_id: str) -> None:
        """Remove the run's record (it waits for nothing any more); no error when there is none."""
        fs, path = fsspec.core.url_to_fs(self._awaited_uri(flow_run_id), **self.storage_options)
        if fs.exists(path):
            fs.rm(path)

    def learning_batches(self, key: str) -> dict[int, list[str]]:
        """Round -> the item ids of that learning round's batch as first drawn for ``key``
        (``tasks.learning.batch_key``); empty when none was."""
        what = f"the learning batches {key}"
        record = self._read_record(f"{self.root}/{LEARNING}/{key}.json", what)
        if record is None:
            return {}
        try:
            return {int(r): [str(i) for i in items] for r, items in record["rounds"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"cannot read {what}: {exc!r}") from None

    def save_learning_batch(self, key: str, round_: int, item_ids: Iterable[str]) -> None:
        """Keep one round's batch for ``key`` (the other rounds' are kept as they are)."""
        rounds = self.learning_batches(key)
        rounds[int(round_)] = sorted(map(str, item_ids))
        payload = {"key": key, "rounds": {str(r): items for r, items in sorted(rounds.items())}}
        self.save_bytes(f"{self.root}/{LEARNING}/{key}.json", json.dumps(payload).encode())

    # -- models --------------------------------------------------------------------------
    def model_uri(self, label_set: str, version: str) -> str:
        return f"{self.root}/_models/{label_set}/{version}.skops"

    def save_bytes(self, uri: str, payload: bytes) -> None:
        with fsspec.open(uri, "wb", auto_mkdir=True, **self.storage_options) as handle:
            handle.write(payload)

    def load_bytes(self, uri: str) -> bytes:
        with fsspec.open(uri, "rb", **self.storage_options) as handle:
            return handle.read()


def content_hash(rows: pd.DataFrame) -> str:
    """sha256 (first 16 hex) of the rows' label-set columns, independent of row order."""
    ordered = rows[LABEL_SET_SCHEMA.names].sort_values("item_id").reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()[
        :16
    ]


def _now() -> datetime:
    return datetime.now(tz=UTC)
