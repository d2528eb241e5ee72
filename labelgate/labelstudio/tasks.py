"""Listing and counting a project's tasks through the Data Manager (``GET /api/tasks/`` with a
``query`` filter, keyset-paged by task id), asking more people about some of them, and retiring
those nobody needs to answer any more."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import pandas as pd

from labelgate.labelstudio import wire
from labelgate.labelstudio.projects import Projects

#: Columns of ``list_tasks``.
TASK_COLUMNS = ("task_id", "item_id", "annotator_ids", "total_annotations", "cancelled_annotations")

IN_LIST_CHUNK = 500  # item ids per Data Manager "in list" filter


class Tasks(Projects):
    """Task listings and counts: ``GET /api/tasks/``; ``PATCH /api/tasks/{id}/``."""

    def task_index(self, project_id: int) -> dict[str, int]:
        """Map ``item_id`` -> task id for every task of the project that has an item id.

        Reads the Data Manager task list (``fields=task_only``) in pages of 1,000 tasks, by
        task id (about 2.5 ms per task on Label Studio 1.23 with SQLite; the JSON export
        endpoint measured the same). Tasks without ``data["item_id"]`` (made outside
        labelgate) are left out; if one item id has several tasks, the oldest task wins.
        """
        index: dict[str, int] = {}
        for task in self.iter_tasks(project_id):
            if task["item_id"] is not None:
                index.setdefault(task["item_id"], task["task_id"])
        return index

    def iter_tasks(
        self,
        project_id: int,
        *,
        exclude_annotator: int | None = None,
        fewer_annotations_than: int | None = None,
        unlabeled: bool = False,
        items: Collection[str] | None = None,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Yield the project's tasks in task id order, a page at a time (with ``items``: in task
        id order within each chunk of item ids).

        Each task is a dict with ``task_id`` (int), ``item_id`` (str or None),
        ``annotator_ids`` (list of user ids, one per annotation, skips included),
        ``total_annotations``, ``cancelled_annotations`` and ``overlap`` (int: the answers the
        task should end with). With ``exclude_annotator``, tasks that user annotated (or skipped)
        are left out on the server. With ``fewer_annotations_than=k``, only tasks with fewer than
        ``k`` annotations that are not skips (``total_annotations < k``) are listed, also on the
        server. With ``unlabeled``, only tasks Label Studio does not count as labeled (fewer
        annotators than their ``overlap``; a skip does not count there) are listed. Paging is
        by task id (keyset), so tasks that change or drop out of the filter while the caller
        works through them are neither skipped nor repeated. With ``items``, only the tasks of
        those item ids are listed (a Data Manager "in list" filter on ``data.item_id``,
        ``IN_LIST_CHUNK`` ids a query): the cost follows how many are asked about, not how many
        tasks the project has.
        """
        filters = []
        if exclude_annotator is not None:
            filters.append(wire.dm_filter("annotators", "not_contains", int(exclude_annotator), "List"))
        if fewer_annotations_than is not None:
            filters.append(wire.dm_filter("total_annotations", "less", int(fewer_annotations_than), "Number"))
        if unlabeled:  # the Data Manager's completed_at is set exactly when the task is_labeled
            filters.append(wire.dm_filter("completed_at", "empty", True, "Datetime"))
        chunks: list[list[str] | None] = [None]
        if items is not None:
            ids = sorted({str(item) for item in items})
            chunks = [ids[i : i + IN_LIST_CHUNK] for i in range(0, len(ids), IN_LIST_CHUNK)]
        for chunk in chunks:
            only = [] if chunk is None else [wire.dm_filter("data.item_id", "in_list", chunk, "String")]
            pages = self._dm_pages(
                project_id, fields="task_only", filters=[*filters, *only], page_size=page_size
            )
            for tasks in pages:
                for task in tasks:
                    yield {
                        "task_id": int(task["id"]),
                        "item_id": wire.item_id_of(task),
                        "annotator_ids": wire.user_ids(task.get("annotators")),
                        "total_annotations": int(task.get("total_annotations") or 0),
                        "cancelled_annotations": int(task.get("cancelled_annotations") or 0),
                        "overlap": 1 if task.get("overlap") is None else int(task["overlap"]),
                    }

    def ask_for_more_answers(
        self, project_id: int, answers: Mapping[str, int], *, only_raise: bool = False
    ) -> int:
        """Have Label Studio offer these items' tasks to more people: item id -> the number of
        answers the task should end with (its ``overlap``; the project's ``maximum_annotations``
        sets it for every task at import). The label stream offers a task while it is not
        labeled, so a task short of its new count is marked not labeled again; Label Studio marks
        it labeled once it has them. For the few items labelgate asks one more person about
        (adjudication, active learning): one request per task that changes. ``only_raise``:
        leave a task that already asks for as many or more (a task :meth:`retire_tasks` retired
        asks for none, so this offers it again). Returns how many changed."""
        if not answers:
            return 0
        wanted = {str(item): int(n) for item, n in answers.items()}
        changed = 0
        ids = sorted(wanted)
        for start in range(0, len(ids), IN_LIST_CHUNK):
            chunk = ids[start : start + IN_LIST_CHUNK]
            filters = [wire.dm_filter("data.item_id", "in_list", chunk, "String")]
            for tasks in self._dm_pages(project_id, fields="task_only", filters=filters):
                for task in tasks:
                    n = wanted.get(str(wire.item_id_of(task)))
                    overlap = int(task.get("overlap") or 0)
                    if n is None or overlap == n or (only_raise and overlap > n):
                        continue
                    done = int(task.get("total_annotations") or 0) >= n
                    self._json("PATCH", f"/api/tasks/{task['id']}/", json={"overlap": n, "is_labeled": done})
                    changed += 1
        return changed

    def retire_tasks(
        self,
        project_id: int,
        keep: Collection[str],
        *,
        begun: bool = False,
        only: Collection[str] | None = None,
    ) -> list[str]:
        """Stop Label Studio offering the tasks labelgate no longer asks about: each task made by
        labelgate that nobody has answered or skipped, whose item is not in ``keep``, is set to
        want no answer (``overlap`` 0, marked labeled), so the label stream passes over it. With
        ``begun``, tasks that have some of their answers stop too: they want the answers they
        have (``overlap`` = answers and skips so far). With ``only``, only the tasks of those
        items are considered. Nothing is deleted: a person can still open a task from the Data
        Manager, and ``ask_for_more_answers(..., only_raise=True)`` offers it again. One listing
        of the tasks not labeled yet, one request per task retired. Returns the item ids retired."""
        keep = set(map(str, keep))
        among = None if only is None else set(map(str, only))
        retired: list[str] = []
        for task in self.iter_tasks(project_id, unlabeled=True):
            item = task["item_id"]
            if item is None or item in keep or task["overlap"] == 0:
                continue
            if among is not None and item not in among:
                continue
            given = task["total_annotations"] + task["cancelled_annotations"]
            if given and not begun:
                continue  # begun: its answers count, and whoever gives the rest is welcome
            self._json("PATCH", f"/api/tasks/{task['task_id']}/", json={"overlap": given, "is_labeled": True})
            retired.append(item)
        return retired

    def count_tasks(
        self, project_id: int, *, min_annotations: int | None = None, labeled: bool | None = None
    ) -> int:
        """How many tasks the project has; with ``min_annotations=k``, how many have at least
        ``k`` annotations that are not skips; with ``labeled``, how many Label Studio counts as
        labeled (True) or not (False). One small request, whatever the project's size."""
        filters = []
        if min_annotations is not None:
            filters.append(
                wire.dm_filter("total_annotations", "greater_or_equal", int(min_annotations), "Number")
            )
        if labeled is not None:
            filters.append(wire.dm_filter("completed_at", "empty", not labeled, "Datetime"))
        params = wire.dm_params(project_id, fields="task_only", filters=filters, page_size=1)
        return int(self._json("GET", "/api/tasks/", params=params).get("total", 0))

    def list_tasks(self, project_id: int, *, exclude_annotator: int | None = None) -> pd.DataFrame:
        """``iter_tasks`` as a DataFrame with the columns ``TASK_COLUMNS``."""
        rows = list(self.iter_tasks(project_id, exclude_annotator=exclude_annotator))
        return pd.DataFrame(rows, columns=list(TASK_COLUMNS))
