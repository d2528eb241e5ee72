"""The one adapter between labelgate and Label Studio (tested against Label Studio 1.23).

``LabelStudio`` is a small, synchronous client over Label Studio's REST API, written on plain
``httpx`` rather than ``label-studio-sdk``: the SDK has no bulk-import-with-dedupe, no
incremental annotation sync and no retry policy we control, and its errors can carry request
details. Everything that talks to Label Studio goes through this class; flows and tasks get an
instance injected (tests pass a fake with the same methods).

What goes over the wire (the task an item becomes, the Data Manager's filters, the reading of
answers, times and error bodies) is built and read by pure functions in
:mod:`labelgate.labelstudio_wire`; this module makes the calls.

Endpoints used (Label Studio 1.23, Community edition):

- projects: ``GET/POST /api/projects/``, ``PATCH/DELETE /api/projects/{id}/``;
- bulk import, tasks and predictions in one call: ``POST /api/projects/{id}/import``;
- task listing through the Data Manager: ``GET /api/tasks/?project=..&fields=task_only``
  with a ``query`` filter, paged by task id;
- annotations: read through ``GET /api/projects/{id}/export?exportType=JSON&ids[]=..``,
  written with ``POST /api/tasks/{id}/annotations/`` (with ``completed_by``);
- users: ``GET/POST /api/users/``; webhooks: ``GET/POST/PATCH /api/webhooks/``.

Reliability: connection failures, timeouts, 429 and 5xx answers are retried with exponential
backoff (``backoff * 2**attempt`` seconds, ``retries`` times), then raise
:class:`~labelgate.errors.ServiceError` naming the method, URL and status. Other 4xx answers
raise at once with Label Studio's own message. A POST that may have reached the server (read
timeout, 5xx) is never blindly repeated: ``import_items`` re-reads which items arrived before it
retries, and ``create_annotation`` only retries a request that was never sent. The API token is
only ever put in the ``Authorization`` header: it is scrubbed from every message and log line.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pandas as pd

from labelgate import labelstudio_wire as wire
from labelgate.errors import DataError, LabelgateError, ServiceError, preview
from labelgate.labelconfig import ITEM_HASH_KEY, ITEM_ID_KEY, ROUTE_REASON_KEY, SUPERSEDED_KEY
from labelgate.labelstudio_wire import ChoiceControl, superseded_id

logger = logging.getLogger(__name__)

#: Webhook events that tell labelgate a person (or bot) answered.
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
#: The header that carries the shared secret on webhook calls.
WEBHOOK_SECRET_HEADER = "X-Labelgate-Secret"
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
#: Columns of ``list_tasks``.
TASK_COLUMNS = ("task_id", "item_id", "annotator_ids", "total_annotations", "cancelled_annotations")

_IN_LIST_CHUNK = 500  # item ids per Data Manager "in list" filter
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Transient(Exception):
    """A failure worth retrying; ``sent`` tells whether the server may have acted on it."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class LabelStudio:
    """Client for one Label Studio server, authenticated with an admin's legacy API token.

    Parameters
    ----------
    url
        Base URL, e.g. ``"http://127.0.0.1:8080"``.
    api_key
        A legacy API token (the server needs ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``).
        Only sent in the ``Authorization`` header; never logged or put in an error.
    timeout
        Seconds per HTTP request (connect, read and write each).
    retries
        Retries after the first attempt for down servers, timeouts, 429 and 5xx answers.
    backoff
        The first retry waits ``backoff`` seconds, then twice as long each time (plus up to
        10 % jitter).
    transport
        An ``httpx`` transport to use instead of the network (tests: ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise LabelgateError(f"Label Studio URL must start with http:// or https://; got {url!r}")
        if hasattr(api_key, "get_secret_value"):
            api_key = api_key.get_secret_value()
        if not api_key:
            raise LabelgateError("Label Studio API key is empty; set LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._api_key = api_key
        self._secrets: set[str] = {api_key}
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Token {api_key}", "Accept": "application/json"},
            transport=transport,
        )
        self._controls: dict[int, ChoiceControl] = {}
        self._emails: dict[int, str] = {}

    @classmethod
    def from_settings(cls, **options: Any) -> LabelStudio:
        """Build a client from ``get_settings()`` (``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``,
        or their ``LABELGATE_LABELSTUDIO_*`` forms); ``options`` go to the constructor."""
        from labelgate.settings import get_settings

        settings = get_settings()
        if settings.labelstudio_api_key is None:
            raise LabelgateError(
                "no Label Studio API key: set LABEL_STUDIO_API_KEY (or "
                "LABELGATE_LABELSTUDIO_API_KEY); `source deploy/secrets.sh` does it for the "
                "local server"
            )
        return cls(settings.labelstudio_url, settings.labelstudio_api_key.get_secret_value(), **options)

    def __repr__(self) -> str:
        return f"LabelStudio(url={self.url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> LabelStudio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ projects

    def ensure_project(
        self, *, title: str, label_config: str, instructions: str = "", annotators_per_task: int = 1
    ) -> int:
        """Return the id of the project called exactly ``title``, creating it if needed.

        A rerun finds the same project (never a second one); when several carry the title,
        the oldest wins. The labeling config and the instructions are updated when they
        changed. Label Studio refuses a config that drops labels existing annotations use:
        that refusal is a ``ServiceError`` carrying its message.

        Parameters
        ----------
        title
            The project's title (at most 50 characters), labelgate's identity for it, for
            example the label set name.
        label_config
            Labeling config XML, see ``labelgate.labelconfig.label_config``.
        instructions
            Shown to labelers in the instructions panel (HTML allowed).
        annotators_per_task
            Label Studio's ``maximum_annotations``: the label stream offers a task to this many
            different people before it counts as done.
        """
        if not title.strip() or len(title) > 50:
            raise LabelgateError(
                f"Label Studio project titles have 1 to 50 characters; got {len(title)}: {title!r}"
            )
        if annotators_per_task < 1:
            raise LabelgateError(f"annotators_per_task must be >= 1; got {annotators_per_task}")
        settings = {
            "label_config": label_config,
            "expert_instruction": instructions,
            "show_instruction": bool(instructions),
            "show_skip_button": True,
            "maximum_annotations": annotators_per_task,
        }
        found = [p for p in self._paged_projects(title) if p.get("title") == title]
        if not found:
            project = self._json("POST", "/api/projects/", json={"title": title, **settings})
            logger.info("created Label Studio project %s (%r)", project["id"], title)
            return int(project["id"])
        project = min(found, key=lambda p: p["id"])
        if len(found) > 1:
            logger.warning(
                "%d Label Studio projects are titled %r; using the oldest, %s",
                len(found),
                title,
                project["id"],
            )
        changed = {
            key: value
            for key, value in settings.items()
            if key != "label_config" and project.get(key) != value
        }
        if wire.squash(project.get("label_config", "")) != wire.squash(label_config):
            changed["label_config"] = label_config
        if changed:
            self._json("PATCH", f"/api/projects/{project['id']}/", json=changed)
            self._controls.pop(int(project["id"]), None)
            logger.info("updated %s of Label Studio project %s", ", ".join(sorted(changed)), project["id"])
        return int(project["id"])

    def find_project(self, title: str) -> int | None:
        """The id of the project titled exactly ``title`` (the oldest, if several), or None.

        Never creates one (``ensure_project`` does).
        """
        ids = [int(p["id"]) for p in self._paged_projects(title) if p.get("title") == title]
        return min(ids) if ids else None

    def project(self, project_id: int) -> dict[str, Any]:
        """The project's ``id``, ``title``, ``created_at`` (ISO string, UTC), ``task_number``,
        ``total_annotations_number`` (annotations that are not skips) and
        ``skipped_annotations_number``.

        ``created_at`` tells a project apart from a later one that reuses its id (after a
        delete), see ``tasks.annotation_sync.mirror_key``.
        """
        project = self._json("GET", f"/api/projects/{project_id}/")
        keys = (
            "id",
            "title",
            "created_at",
            "task_number",
            "total_annotations_number",
            "skipped_annotations_number",
        )
        return {key: project.get(key) for key in keys}

    def delete_project(self, project_id: int) -> None:
        """Delete a project with its tasks and annotations (cannot be undone)."""
        self._request("DELETE", f"/api/projects/{project_id}/")
        self._controls.pop(project_id, None)

    def choice_control(self, project_id: int) -> ChoiceControl:
        """The project's first ``<Choices>`` control (names used in results, and its classes)."""
        if project_id not in self._controls:
            project = self._json("GET", f"/api/projects/{project_id}/")
            parsed = project.get("parsed_label_config") or {}
            for name, control in parsed.items():
                if control.get("type") == "Choices" and control.get("to_name"):
                    self._controls[project_id] = ChoiceControl(
                        from_name=name,
                        to_name=control["to_name"][0],
                        labels=tuple(control.get("labels") or ()),
                    )
                    break
            else:
                raise ServiceError(
                    f"Label Studio project {project_id} at {self.url} has no <Choices> control "
                    "in its labeling config; labelgate only runs classification projects"
                )
        return self._controls[project_id]

    # ------------------------------------------------------------------ tasks

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
        if changed:
            raise DataError(wire.changed_message(project_id, changed))
        logger.info(
            "imported %d new tasks into Label Studio project %s (%d already there)",
            created,
            project_id,
            len(frame) - created,
        )
        return created

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
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Yield the project's tasks in task id order, a page at a time.

        Each task is a dict with ``task_id`` (int), ``item_id`` (str or None),
        ``annotator_ids`` (list of user ids, one per annotation, skips included),
        ``total_annotations``, ``cancelled_annotations`` and ``overlap`` (int: the answers the
        task should end with). With ``exclude_annotator``, tasks that user annotated (or skipped)
        are left out on the server. With ``fewer_annotations_than=k``, only tasks with fewer than
        ``k`` annotations that are not skips (``total_annotations < k``) are listed, also on the
        server. With ``unlabeled``, only tasks Label Studio does not count as labeled (fewer
        annotators than their ``overlap``; a skip does not count there) are listed. Paging is
        by task id (keyset), so tasks that change or drop out of the filter while the caller
        works through them are neither skipped nor repeated.
        """
        filters = []
        if exclude_annotator is not None:
            filters.append(wire.dm_filter("annotators", "not_contains", int(exclude_annotator), "List"))
        if fewer_annotations_than is not None:
            filters.append(wire.dm_filter("total_annotations", "less", int(fewer_annotations_than), "Number"))
        if unlabeled:  # the Data Manager's completed_at is set exactly when the task is_labeled
            filters.append(wire.dm_filter("completed_at", "empty", True, "Datetime"))
        for tasks in self._dm_pages(project_id, fields="task_only", filters=filters, page_size=page_size):
            for task in tasks:
                item_id = (task.get("data") or {}).get(ITEM_ID_KEY)
                yield {
                    "task_id": int(task["id"]),
                    "item_id": None if item_id is None else str(item_id),
                    "annotator_ids": wire.user_ids(task.get("annotators")),
                    "total_annotations": int(task.get("total_annotations") or 0),
                    "cancelled_annotations": int(task.get("cancelled_annotations") or 0),
                    "overlap": int(task.get("overlap") or 1),
                }

    def ask_for_more_answers(self, project_id: int, answers: Mapping[str, int]) -> int:
        """Have Label Studio offer these items' tasks to more people: item id -> the number of
        answers the task should end with (its ``overlap``; the project's ``maximum_annotations``
        sets it for every task at import). The label stream offers a task while it is not
        labeled, so a task short of its new count is marked not labeled again; Label Studio marks
        it labeled once it has them. For the few items labelgate asks one more person about
        (adjudication, active learning): one request per task that changes. Returns how many."""
        if not answers:
            return 0
        wanted = {str(item): int(n) for item, n in answers.items()}
        changed = 0
        ids = sorted(wanted)
        for start in range(0, len(ids), _IN_LIST_CHUNK):
            chunk = ids[start : start + _IN_LIST_CHUNK]
            filters = [wire.dm_filter("data.item_id", "in_list", chunk, "String")]
            for tasks in self._dm_pages(project_id, fields="task_only", filters=filters):
                for task in tasks:
                    n = wanted.get(str((task.get("data") or {}).get(ITEM_ID_KEY)))
                    if n is None or int(task.get("overlap") or 0) == n:
                        continue
                    done = int(task.get("total_annotations") or 0) >= n
                    self._json("PATCH", f"/api/tasks/{task['id']}/", json={"overlap": n, "is_labeled": done})
                    changed += 1
        return changed

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

    # ------------------------------------------------------------------ annotations

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
        for tasks in self._export_tasks(project_id, pages):
            for task in tasks:
                item_id = (task.get("data") or {}).get(ITEM_ID_KEY)
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

    # ------------------------------------------------------------------ users and webhooks

    def ensure_user(self, email: str, *, first_name: str = "", last_name: str = "") -> int:
        """Return the id of the organization member with this e-mail, creating the user if
        needed (no password: such a user cannot log in, which suits bots; a person sets one
        through the password reset or the admin). E-mails compare case-insensitively."""
        if "@" not in email:
            raise LabelgateError(f"not an e-mail address: {email!r}")
        users = self._load_users()
        for user_id, known in users.items():
            if known.lower() == email.lower():
                return user_id
        user = self._json(
            "POST",
            "/api/users/",
            json={
                "email": email,
                "username": email,
                "first_name": first_name,
                "last_name": last_name,
            },
        )
        self._emails[int(user["id"])] = user["email"]
        logger.info("created Label Studio user %s (id %s)", email, user["id"])
        return int(user["id"])

    def add_webhook(
        self, project_id: int, url: str, *, secret: str, header: str = WEBHOOK_SECRET_HEADER
    ) -> int:
        """Make sure the project calls ``url`` on annotation events; return the webhook id.

        Idempotent: one webhook per (project, url); a second call updates its secret and events
        instead of adding another. Events: ``WEBHOOK_ACTIONS`` (annotation created, bulk
        created, updated), with the payload, and the header ``header: secret`` that the
        receiver checks. Label Studio refuses local URLs (127.0.0.1, private networks) unless
        it runs with ``SSRF_PROTECTION_ENABLED=false``.
        """
        if not secret:
            raise LabelgateError("webhook secret must not be empty")
        self._secrets.add(secret)
        wanted = {
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "headers": {header: secret},
            "is_active": True,
            "actions": list(WEBHOOK_ACTIONS),
        }
        hooks = self._json("GET", "/api/webhooks/", params={"project": project_id})
        hooks = hooks.get("results", hooks) if isinstance(hooks, dict) else hooks
        same = sorted(
            (h for h in hooks if h.get("project") == project_id and h.get("url") == url),
            key=lambda h: h["id"],
        )
        try:
            if not same:
                hook = self._json("POST", "/api/webhooks/", json={"project": project_id, **wanted})
                logger.info("added webhook %s to Label Studio project %s", hook["id"], project_id)
                return int(hook["id"])
            hook = same[0]
            stale = [
                k
                for k, v in wanted.items()
                if (sorted(hook.get(k) or []) if k == "actions" else hook.get(k))
                != (sorted(v) if k == "actions" else v)
            ]
            if stale:  # send every field: a PATCH without "actions" clears them (LS 1.23)
                self._json("PATCH", f"/api/webhooks/{hook['id']}/", json=wanted)
            return int(hook["id"])
        except ServiceError as error:
            if "reserved network" not in str(error):
                raise
            raise ServiceError(
                f"{error}. Label Studio refuses webhook URLs on loopback or "
                "private networks unless it runs with "
                "SSRF_PROTECTION_ENABLED=false"
            ) from None

    # ------------------------------------------------------------------ internals

    def _import_chunk(self, project_id: int, chunk: pd.DataFrame, control: ChoiceControl) -> int:
        """Import one chunk; after an ambiguous failure, re-read the index and send the rest."""
        path = f"/api/projects/{project_id}/import"
        for attempt in range(self.retries + 1):
            tasks = [wire.task_payload(row, control) for row in chunk.itertuples(index=False)]
            try:
                answer = self._send("POST", path, json=tasks).json()
                return int(answer.get("task_count", len(tasks)))
            except _Transient as error:
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

    def _annotation_row(
        self,
        annotation: Mapping[str, Any],
        task: Mapping[str, Any],
        item_id: object,
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
            "item_id": None if item_id is None else str(item_id),
            "annotator": self._emails.get(annotator_id) if annotator_id is not None else None,
            "annotator_id": annotator_id,
            "label": label,
            "raw_label": raw,
            "status": status,
            "created_at": annotation.get("created_at"),
            "updated_at": annotation.get("updated_at"),
        }

    def _load_users(self) -> dict[int, str]:
        users = self._json("GET", "/api/users/")
        users = users.get("results", users) if isinstance(users, dict) else users
        self._emails.update({int(u["id"]): u.get("email") or "" for u in users})
        return dict(self._emails)

    def _paged_projects(self, title: str) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            answer = self._json(
                "GET",
                "/api/projects/",
                params={
                    "title": title,
                    "page": page,
                    "page_size": 100,
                    "include": "id,title,label_config,expert_instruction,show_instruction,"
                    "show_skip_button,maximum_annotations",
                },
            )
            yield from answer.get("results", [])
            if not answer.get("next"):
                return
            page += 1

    def changed_items(self, project_id: int, items: pd.DataFrame, *, chunk_size: int = 500) -> list[str]:
        """Item ids whose task in the project was made from other content than ``items`` has now
        (columns ``item_id`` and ``data``, as for :meth:`import_items`): the data file changed
        them since they were sent, so the answers on those tasks are about the old content.
        With a ``content_hash`` column (see :meth:`import_items`), ``data`` may be left out.

        Compares the content hash each task keeps (``data["item_hash"]``); tasks made before
        labelgate kept one, and items with no task, are never reported. Costs one Data Manager
        count per chunk that has tasks, and a listing only of a chunk where some differ."""
        columns = ["item_id"] + [c for c in ("data", "content_hash") if c in items.columns]
        frame = items[columns].astype({"item_id": str})
        if frame.empty or self.count_tasks(project_id) == 0:
            return []
        changed: list[str] = []
        for start in range(0, len(frame), chunk_size):
            chunk = frame.iloc[start : start + chunk_size]
            there = chunk["item_id"].isin(self._existing_items(project_id, chunk))
            changed += self._changed_in_chunk(project_id, chunk[there])
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

    def changed_tasks(self, project_id: int, items: pd.DataFrame, *, chunk_size: int = 500) -> dict[int, str]:
        """The tasks behind :meth:`changed_items`: task id -> the id it keeps once superseded
        (:func:`superseded_id`), for :meth:`supersede_tasks`."""
        columns = ["item_id"] + [c for c in ("data", "content_hash") if c in items.columns]
        frame = items[columns].astype({"item_id": str})
        if frame.empty or self.count_tasks(project_id) == 0:
            return {}
        out: dict[int, str] = {}
        for start in range(0, len(frame), chunk_size):
            chunk = frame.iloc[start : start + chunk_size]
            there = chunk["item_id"].isin(self._existing_items(project_id, chunk))
            for task in self._changed_tasks_in_chunk(project_id, chunk[there]):
                data = task["data"]
                out[task["id"]] = superseded_id(str(data[ITEM_ID_KEY]), str(data[ITEM_HASH_KEY]))
        return out

    def supersede_tasks(self, project_id: int, moved: Mapping[int, str]) -> int:
        """Set tasks made from an item's old content aside, so that the item can get a new task
        (:meth:`import_items`): each keeps its data and its annotations, under the id ``moved``
        gives it (``data["item_id"]``; the item's own id goes to ``data["superseded_item_id"]``),
        with a reason that tells labelers so, and is marked labeled so that the label stream
        offers it to nobody. One request per task (a changed item is rare). Returns how many."""
        for task_id, new_id in moved.items():
            data = self._json("GET", f"/api/tasks/{int(task_id)}/").get("data") or {}
            if data.get(ITEM_ID_KEY) == new_id:
                continue  # set aside already (a rerun)
            data = {
                **data,
                SUPERSEDED_KEY: data.get(ITEM_ID_KEY),
                ITEM_ID_KEY: new_id,
                ROUTE_REASON_KEY: "superseded: the data file changed this item since this task was "
                "made; its answers are kept, and the item has a new task",
            }
            self._json("PATCH", f"/api/tasks/{int(task_id)}/", json={"data": data, "is_labeled": True})
        if moved:
            logger.info("set aside %d task(s) of changed items in project %s", len(moved), project_id)
        return len(moved)

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
            found.update(str((t.get("data") or {}).get(ITEM_ID_KEY)) for t in tasks)
        return found & set(ids)

    def _export_tasks(
        self, project_id: int, pages: Iterator[list[dict[str, Any]]], *, batch: int = 500
    ) -> Iterator[list[dict[str, Any]]]:
        """Full tasks (with annotations) of the listed ones, through the JSON export by ids:
        about 30 % faster than the Data Manager's ``fields=all`` on Label Studio 1.23."""
        for page in pages:
            ids = [int(task["id"]) for task in page]
            for start in range(0, len(ids), batch):
                yield self._json(
                    "GET",
                    f"/api/projects/{project_id}/export",
                    params={
                        "exportType": "JSON",
                        "download_all_tasks": "true",
                        "ids[]": ids[start : start + batch],
                    },
                )

    def _dm_pages(
        self, project_id: int, *, fields: str, filters: Sequence[dict] = (), page_size: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Data Manager task pages in task id order, keyset-paged (``id > last``)."""
        last_id = 0
        while True:
            params = wire.dm_params(
                project_id,
                fields=fields,
                page_size=page_size,
                filters=[*filters, wire.dm_filter("id", "greater", last_id, "Number")],
            )
            tasks = self._json("GET", "/api/tasks/", params=params).get("tasks", [])
            if tasks:
                yield tasks
            if len(tasks) < page_size:
                return
            last_id = max(int(t["id"]) for t in tasks)

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        only_unsent: bool = False,
    ) -> Any:
        response = self._request(method, path, params=params, json=json, only_unsent=only_unsent)
        return response.json() if response.content else None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        only_unsent: bool = False,
    ) -> httpx.Response:
        """Send with retries; ``only_unsent`` retries only requests that never left."""
        for attempt in range(self.retries + 1):
            try:
                return self._send(method, path, params=params, json=json)
            except _Transient as error:
                if attempt == self.retries or (only_unsent and error.sent):
                    tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
                    raise ServiceError(self._scrub(f"{error} ({tries})")) from None
                self._sleep(attempt, str(error))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """One HTTP exchange: the response, ``_Transient``, or ``ServiceError`` for 4xx."""
        where = f"Label Studio {method} {self.url}{path}"
        content = None if json is None else wire.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, path, params=params, content=content, headers=headers)
        except _UNSENT as error:
            raise _Transient(f"{where} failed: cannot connect ({type(error).__name__})", sent=False) from None
        except httpx.TimeoutException as error:
            raise _Transient(
                f"{where} failed: no answer within {self.timeout} s ({type(error).__name__})", sent=True
            ) from None
        except httpx.TransportError as error:
            raise _Transient(
                f"{where} failed: connection broken ({type(error).__name__})", sent=True
            ) from None
        finally:
            self._http.cookies.clear()  # token auth only: no session cookie, so no CSRF
        status = response.status_code
        if status < 400:
            return response
        message = f"{where} answered HTTP {status}: {wire.error_detail(response)}"
        if status == 429 or status >= 500:
            raise _Transient(message, sent=True)
        if status in (401, 403):
            message += (
                " (check LABEL_STUDIO_API_KEY; legacy tokens need "
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true on the server)"
            )
        raise ServiceError(self._scrub(message))

    def _sleep(self, attempt: int, reason: str) -> None:
        delay = self.backoff * 2**attempt * (1 + 0.1 * random.random())
        logger.warning("%s; retry %d/%d in %.1f s", self._scrub(reason), attempt + 1, self.retries, delay)
        time.sleep(delay)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text
