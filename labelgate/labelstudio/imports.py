"""Items into tasks: the bulk import (tasks and predictions in one call, chunked, never a
duplicate on a rerun), and the tasks of items whose content changed since they were sent,
found by their content hash and set aside with their answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from labelgate import progress
from labelgate.errors import DataError, LabelgateError, ServiceError, preview
from labelgate.labelconfig import ITEM_HASH_KEY, ITEM_ID_KEY, ROUTE_REASON_KEY, SUPERSEDED_KEY
from labelgate.labelstudio import wire
from labelgate.labelstudio.connection import Transient
from labelgate.labelstudio.tasks import Tasks
from labelgate.labelstudio.wire import ChoiceControl, superseded_id

logger = logging.getLogger(__name__)


class Imports(Tasks):
    """Bulk import: ``POST /api/projects/{id}/import``; setting tasks aside:
    ``PATCH /api/tasks/{id}/``."""

    def import_items(self, project_id: int, items: pd.DataFrame, *, chunk_size: int = 500) -> int:
        """Create one task per item that the project does not have yet; return how many.

        Task identity is ``item_id``: items already in the project are skipped, so a rerun
        after a crash makes no duplicate. Tasks and their predictions go together through the
        bulk import endpoint, ``chunk_size`` tasks per call. A project with no task yet needs
        no check. Otherwise, before each chunk, one Data Manager query (``data.item_id`` in the
        chunk's ids) counts the chunk's items already there: none or all (a rerun) costs one
        request; only a chunk that is partly there is listed. That query scans a JSON field, so
        it grows with the project (about 0.5 s per chunk at 50,000 tasks on SQLite).

        Parameters
        ----------
        project_id
            From ``ensure_project``.
        items
            One row per item. Columns:

            - ``item_id`` (str, unique): labelgate's id, stored as ``data["item_id"]``;
            - ``data`` (dict): the task data the config shows, e.g. ``{"text": ...}``,
              ``{"image": "data:image/png;base64,..."}`` or ``{"html": "<table>..."}``;
            - ``route_reason`` (str): why the item needs a person, shown to labelers;
            - optional ``content_hash`` (str): identifies the item's content, kept in the task as
              ``data["item_hash"]`` (default: a hash of ``data``). When an item that already has
              a task comes with another content hash, the import raises ``DataError`` naming it
              (the answers on that task are about the old content; see :meth:`changed_items`);
              the other items are imported;
            - optional ``prediction`` (class name or missing), ``prediction_score`` (float in
              [0, 1]) and ``model_version`` (str): the model's pre-annotation.
        chunk_size
            Tasks per import call (Label Studio times out on very large single imports).

        Returns
        -------
        int
            The number of tasks created by this call (0 on a complete rerun).
        """
        frame = wire.check_items(items)
        if chunk_size < 1:
            raise LabelgateError(f"chunk_size must be >= 1; got {chunk_size}")
        if frame.empty:
            return 0
        control = self.choice_control(project_id)
        if "prediction" in frame.columns:
            predicted = frame["prediction"].dropna().astype(str)
            unknown = sorted(set(predicted) - set(control.labels))
            if unknown:
                raise DataError(
                    f"column 'prediction' has classes that project {project_id} does not offer: "
                    f"{preview(unknown)} (offered: {preview(control.labels)})"
                )
        created, changed = 0, []
        # Into a project with no task yet, none of the items can be there: skip the per-chunk
        # look-ups (they filter on a JSON field, a scan that grows with the project).
        empty = self.count_tasks(project_id) == 0
        for start in range(0, len(frame), chunk_size):
            chunk = frame.iloc[start : start + chunk_size]
            if not empty:
                there = chunk["item_id"].isin(self._existing_items(project_id, chunk))
                changed += self._changed_in_chunk(project_id, chunk[there])
                chunk = chunk[~there]
            if not chunk.empty:
                created += self._import_chunk(project_id, chunk, control)
            if len(frame) > chunk_size:
                done = min(start + chunk_size, len(frame))
                progress.working("import", f"{done} of {len(frame)} items checked, {created} new tasks")
        if changed:
            raise DataError(wire.changed_message(project_id, changed))
        logger.info(
            "imported %d new tasks into Label Studio project %s (%d already there)",
            created,
            project_id,
            len(frame) - created,
        )
        return created

    def _import_chunk(self, project_id: int, chunk: pd.DataFrame, control: ChoiceControl) -> int:
        """Import one chunk; after an ambiguous failure, re-read the index and send the rest."""
        path = f"/api/projects/{project_id}/import"
        for attempt in range(self.retries + 1):
            tasks = [wire.task_payload(row, control) for row in chunk.itertuples(index=False)]
            try:
                answer = self._send("POST", path, json=tasks).json()
                return int(answer.get("task_count", len(tasks)))
            except Transient as error:
                if attempt == self.retries:
                    raise ServiceError(
                        self._scrub(f"{error} (gave up after {self.retries + 1} attempts)")
                    ) from None
                self._sleep(attempt, str(error))
                if error.sent:  # the server may have imported it: send only what is missing
                    chunk = chunk[~chunk["item_id"].isin(self._existing_items(project_id, chunk))]
                    if chunk.empty:
                        return 0
        raise AssertionError("unreachable")  # pragma: no cover

    def changed_items(self, project_id: int, items: pd.DataFrame, *, chunk_size: int = 500) -> list[str]:
        """Item ids whose task in the project was made from other content than ``items`` has now
        (columns ``item_id`` and ``data``, as for :meth:`import_items`): the data file changed
        them since they were sent, so the answers on those tasks are about the old content.
        With a ``content_hash`` column (see :meth:`import_items`), ``data`` may be left out.

        Compares the content hash each task keeps (``data["item_hash"]``); tasks made before
        labelgate kept one, and items with no task, are never reported. Costs one Data Manager
        count per chunk that has tasks, and a listing only of a chunk where some differ."""
        tasks = self._changed_tasks(project_id, items, chunk_size)
        return sorted({str(task["data"][ITEM_ID_KEY]) for task in tasks})

    def changed_tasks(self, project_id: int, items: pd.DataFrame, *, chunk_size: int = 500) -> dict[int, str]:
        """The tasks behind :meth:`changed_items`: task id -> the id it keeps once superseded
        (:func:`superseded_id`), for :meth:`supersede_tasks`."""
        return {
            task["id"]: superseded_id(str(task["data"][ITEM_ID_KEY]), str(task["data"][ITEM_HASH_KEY]))
            for task in self._changed_tasks(project_id, items, chunk_size)
        }

    def _changed_tasks(self, project_id: int, items: pd.DataFrame, chunk_size: int) -> list[dict[str, Any]]:
        columns = ["item_id"] + [c for c in ("data", "content_hash") if c in items.columns]
        frame = items[columns].astype({"item_id": str})
        if frame.empty or self.count_tasks(project_id) == 0:
            return []
        changed: list[dict[str, Any]] = []
        for start in range(0, len(frame), chunk_size):
            chunk = frame.iloc[start : start + chunk_size]
            there = chunk["item_id"].isin(self._existing_items(project_id, chunk))
            changed += self._changed_tasks_in_chunk(project_id, chunk[there])
        return changed

    def _changed_in_chunk(self, project_id: int, chunk: pd.DataFrame) -> list[str]:
        """Of ``chunk``'s items, all of which have a task, those whose task keeps another content
        hash."""
        tasks = self._changed_tasks_in_chunk(project_id, chunk)
        return sorted({str(t["data"][ITEM_ID_KEY]) for t in tasks})

    def _changed_tasks_in_chunk(self, project_id: int, chunk: pd.DataFrame) -> list[dict[str, Any]]:
        """The tasks behind :meth:`_changed_in_chunk`: a count of the tasks whose hash matches
        first, a listing only when it falls short."""
        if chunk.empty:
            return []
        ids = chunk["item_id"].astype(str).tolist()
        expected = dict(zip(ids, wire.item_hashes(chunk), strict=True))
        filters = [
            wire.dm_filter("data.item_id", "in_list", ids, "String"),
            wire.dm_filter(f"data.{ITEM_HASH_KEY}", "in_list", sorted(set(expected.values())), "String"),
        ]
        params = wire.dm_params(project_id, fields="task_only", filters=filters, page_size=1)
        if int(self._json("GET", "/api/tasks/", params=params).get("total", 0)) >= len(ids):
            return []
        changed = []
        for tasks in self._dm_pages(project_id, fields="task_only", filters=filters[:1]):
            for task in tasks:
                data = task.get("data") or {}
                item, kept = str(data.get(ITEM_ID_KEY)), data.get(ITEM_HASH_KEY)
                if kept is not None and item in expected and kept != expected[item]:
                    changed.append({"id": int(task["id"]), "data": data})
        return changed

    def supersede_tasks(self, project_id: int, moved: Mapping[int, str]) -> int:
        """Set tasks made from an item's old content aside, so that the item can get a new task
        (:meth:`import_items`): each keeps its data and its annotations, under the id ``moved``
        gives it (``data["item_id"]``; the item's own id goes to ``data["superseded_item_id"]``),
        with a reason that tells labelers so, and is marked labeled so that the label stream
        offers it to nobody. Reads the tasks' data in one export call per 500, then one PATCH per
        task (Label Studio has no bulk task update; a changed item is rare). Returns how many it
        set aside (a task set aside already, on a rerun, is left as it is)."""
        done = 0
        for task in self._task_data(project_id, list(moved)):
            task_id, data = int(task["id"]), task.get("data") or {}
            new_id = moved[task_id]
            if data.get(ITEM_ID_KEY) == new_id:
                continue  # set aside already (a rerun)
            data = {
                **data,
                SUPERSEDED_KEY: data.get(ITEM_ID_KEY),
                ITEM_ID_KEY: new_id,
                ROUTE_REASON_KEY: "superseded: the data file changed this item since this task was "
                "made; its answers are kept, and the item has a new task",
            }
            self._json("PATCH", f"/api/tasks/{task_id}/", json={"data": data, "is_labeled": True})
            done += 1
        if done:
            logger.info("set aside %d task(s) of changed items in project %s", done, project_id)
        return done

    def task_items(self, project_id: int, task_ids: Sequence[int]) -> dict[int, str | None]:
        """Task id -> the item id the task carries now (``data["item_id"]``), for the tasks of the
        project with these ids (one export call per 500; a task not there is left out)."""
        return {
            int(task["id"]): wire.item_id_of(task)
            for page in self._exported(project_id, [list(task_ids)])
            for task in page
        }

    def _task_data(self, project_id: int, task_ids: list[int]) -> list[dict[str, Any]]:
        """The tasks with these ids, with their data, through the JSON export by ids."""
        tasks = [task for page in self._exported(project_id, [task_ids]) for task in page]
        missing = set(map(int, task_ids)) - {int(t["id"]) for t in tasks}
        if missing:
            raise ServiceError(
                f"Label Studio project {project_id} at {self.url} has no task {preview(sorted(missing))}"
            )
        return tasks

    def _existing_items(self, project_id: int, chunk: pd.DataFrame) -> set[str]:
        """Which of the chunk's item ids the project has: a count first, a listing if mixed."""
        ids = chunk["item_id"].astype(str).tolist()
        filters = [wire.dm_filter("data.item_id", "in_list", ids, "String")]
        params = wire.dm_params(project_id, fields="task_only", filters=filters, page_size=1)
        total = int(self._json("GET", "/api/tasks/", params=params).get("total", 0))
        if total == 0:
            return set()
        if total == len(set(ids)):  # labelgate never makes two tasks of one item
            return set(ids)
        found: set[str] = set()
        for tasks in self._dm_pages(project_id, fields="task_only", filters=filters):
            found.update(str(wire.item_id_of(t)) for t in tasks)
        return found & set(ids)
