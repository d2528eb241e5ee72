"""Annotations: the incremental read of what people answered since a cursor (tasks updated
since then, read with their annotations through the JSON export), and the writing of one
answer (the bots)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from labelgate.labelstudio import wire
from labelgate.labelstudio.people import People
from labelgate.labelstudio.projects import Projects
from labelgate.labelstudio.wire import ChoiceControl

#: Columns of ``fetch_annotations``.
ANNOTATION_COLUMNS = (
    "annotation_id",
    "task_id",
    "item_id",
    "annotator",
    "annotator_id",
    "label",
    "raw_label",
    "status",
    "created_at",
    "updated_at",
)


class Annotations(Projects, People):
    """Reading: ``GET /api/projects/{id}/export?exportType=JSON&ids[]=..``; writing:
    ``POST /api/tasks/{id}/annotations/`` (with ``completed_by``)."""

    def fetch_annotations(
        self, project_id: int, *, since: int = 0, classes: Sequence[str] | None = None, settle: float = 1.0
    ) -> pd.DataFrame:
        """Annotations created or updated after the cursor ``since``; incremental sync.

        The cursor is an update time: microseconds since the Unix epoch (UTC). A call returns
        every annotation whose ``updated_at`` lies in ``(since, snapshot]``, where snapshot is
        the server's clock at the call minus ``settle`` seconds, and hands back
        ``frame.attrs["cursor"]`` (int) to pass as ``since`` next time. So:

        - an annotation that is edited comes back again with the same ``annotation_id`` and a
          newer ``updated_at`` (upsert on ``annotation_id``; nothing is lost);
        - annotations saved while the call runs fall after the snapshot and come in the next
          call, so none is skipped by a cursor that moved past it; ``settle`` covers saves
          whose timestamp precedes their commit;
        - ``since=0`` reads everything. Only tasks updated after ``since`` are read
          (Data Manager filter on the task's ``updated_at``, which Label Studio bumps on every
          annotation save, and on having annotations), so the cost follows what changed, not
          the project size. The changed tasks are listed by id, then read with their
          annotations through the JSON export (``ids[]``, 500 per call): about 4 ms per
          changed task on Label Studio 1.23 with SQLite.

        Deleted annotations are not reported.

        Parameters
        ----------
        project_id
            From ``ensure_project``.
        since
            The cursor from the previous call's ``attrs["cursor"]``, or 0.
        classes
            The valid class names; default: the choices of the project's config.
        settle
            Seconds kept back from the server's clock (see above); 0 in tests that sleep.

        Returns
        -------
        pandas.DataFrame
            One row per annotation, ordered by ``updated_at``. Columns ``annotation_id``,
            ``task_id``, ``annotator_id`` (int), ``item_id`` (str or None), ``annotator``
            (e-mail or None), ``label`` (a class name, or None unless status is "ok"),
            ``raw_label`` (the choice as given, several joined by ", "), ``status``
            (``"ok"``; ``"skipped"``: the labeler skipped the task; ``"empty"``: submitted with
            no choice; ``"unknown_label"``: a choice outside ``classes``, or several),
            ``created_at`` and ``updated_at`` (UTC timestamps). ``attrs["cursor"]`` holds the
            next cursor.
        """
        control = self.choice_control(project_id)
        valid = set(control.labels if classes is None else classes)
        since_time = wire.EPOCH + timedelta(microseconds=int(since))
        filters = [
            wire.dm_filter("updated_at", "greater", since_time.strftime(wire.DM_DATETIME), "Datetime"),
            wire.dm_filter("annotators", "empty", False, "List"),  # has annotations, skips included
        ]
        rows: list[dict[str, Any]] = []
        # The snapshot comes from a request made before any task is read (the Date header
        # is whole seconds, rounded down), so every annotation stamped before it is visible.
        count = self._request(
            "GET",
            "/api/tasks/",
            params=wire.dm_params(project_id, fields="task_only", filters=filters, page_size=1),
        )
        snapshot = wire.micros(wire.server_time(count)) - round(settle * 1_000_000)
        pages = self._dm_pages(project_id, fields="task_only", filters=filters)
        if not count.json().get("total"):
            pages = iter(())
        for tasks in self._exported(project_id, ([int(t["id"]) for t in page] for page in pages)):
            for task in tasks:
                item_id = wire.item_id_of(task)
                for annotation in task.get("annotations") or []:
                    updated = wire.micros(wire.parse_time(annotation.get("updated_at")))
                    if since < updated <= snapshot:
                        rows.append(self._annotation_row(annotation, task, item_id, control, valid))
        frame = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
        missing = {r for r in frame["annotator_id"].dropna() if int(r) not in self._emails}
        if missing:
            self._load_users()
            frame["annotator"] = [
                self._emails.get(int(u)) if pd.notna(u) else None for u in frame["annotator_id"]
            ]
        for column in ("created_at", "updated_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(
                "datetime64[us, UTC]"
            )
        frame = frame.astype({"annotation_id": "int64", "task_id": "int64", "annotator_id": "Int64"})
        for column in ("item_id", "annotator", "label", "raw_label", "status"):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
        frame = frame.sort_values(["updated_at", "annotation_id"], kind="stable")
        frame = frame.reset_index(drop=True)
        frame.attrs["cursor"] = max(int(since), snapshot)
        return frame

    def create_annotation(
        self,
        task_id: int,
        choice: str | None,
        *,
        project_id: int,
        completed_by: int | None = None,
        was_cancelled: bool = False,
        lead_time: float | None = None,
    ) -> int:
        """Submit one annotation to a task; return its id.

        ``choice`` is the class name (``None`` for an empty annotation); ``was_cancelled=True``
        records a skip. ``completed_by`` attributes it to that user (default: the token's
        owner). Retried only when the request never reached the server, so a flaky network
        cannot create the same annotation twice.
        """
        control = self.choice_control(project_id)
        result = (
            []
            if choice is None or was_cancelled
            else [
                {
                    "from_name": control.from_name,
                    "to_name": control.to_name,
                    "type": "choices",
                    "value": {"choices": [choice]},
                }
            ]
        )
        body: dict[str, Any] = {"result": result, "was_cancelled": was_cancelled}
        if completed_by is not None:
            body["completed_by"] = completed_by
        if lead_time is not None:
            body["lead_time"] = lead_time
        answer = self._json("POST", f"/api/tasks/{task_id}/annotations/", json=body, only_unsent=True)
        return int(answer["id"])

    def _annotation_row(
        self,
        annotation: Mapping[str, Any],
        task: Mapping[str, Any],
        item_id: str | None,
        control: ChoiceControl,
        valid: set[str],
    ) -> dict[str, Any]:
        choices = wire.chosen_values(annotation.get("result"), control.from_name)
        raw = ", ".join(choices) if choices else None
        if annotation.get("was_cancelled"):
            status, label = "skipped", None
        elif not choices:
            status, label = "empty", None
        elif len(choices) == 1 and choices[0] in valid:
            status, label = "ok", choices[0]
        else:
            status, label = "unknown_label", None
        annotator_id = wire.user_id(annotation.get("completed_by"))
        return {
            "annotation_id": int(annotation["id"]),
            "task_id": int(annotation.get("task") or task["id"]),
            "item_id": item_id,
            "annotator": self._emails.get(annotator_id) if annotator_id is not None else None,
            "annotator_id": annotator_id,
            "label": label,
            "raw_label": raw,
            "status": status,
            "created_at": annotation.get("created_at"),
            "updated_at": annotation.get("updated_at"),
        }
