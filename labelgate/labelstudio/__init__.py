"""The one adapter between labelgate and Label Studio (tested against Label Studio 1.23).

``LabelStudio`` is a small, synchronous client over Label Studio's REST API, written on plain
``httpx`` rather than ``label-studio-sdk``: the SDK has no bulk-import-with-dedupe, no
incremental annotation sync and no retry policy we control, and its errors can carry request
details. Everything that talks to Label Studio goes through this class; flows and tasks get an
instance injected (tests pass a fake with the same methods).

The class is put together from one module per thing it does:

- :mod:`~labelgate.labelstudio.connection`: HTTP, retries with backoff, secret scrubbing, the
  Data Manager's task pages;
- :mod:`~labelgate.labelstudio.projects`: projects from the spec's labeling config;
- :mod:`~labelgate.labelstudio.tasks`: listing and counting tasks, asking more people, retiring
  the tasks no run asks about any more;
- :mod:`~labelgate.labelstudio.imports`: items into tasks in bulk, and the tasks of changed
  items set aside;
- :mod:`~labelgate.labelstudio.annotations`: the incremental read of answers, and writing one;
- :mod:`~labelgate.labelstudio.people`: users and the webhook;
- :mod:`~labelgate.labelstudio.wire`: what goes over the wire (the task an item becomes, the
  Data Manager's filters, the reading of answers, times and error bodies), as pure functions.

Endpoints used (Label Studio 1.23, Community edition):

- projects: ``GET/POST /api/projects/``, ``PATCH/DELETE /api/projects/{id}/``;
- bulk import, tasks and predictions in one call: ``POST /api/projects/{id}/import``;
- task listing through the Data Manager: ``GET /api/tasks/?project=..&fields=task_only``
  with a ``query`` filter, paged by task id;
- annotations: read through ``GET /api/projects/{id}/export?exportType=JSON&ids[]=..``,
  written with ``POST /api/tasks/{id}/annotations/`` (with ``completed_by``);
- a task's wanted answers (``overlap``, ``is_labeled``): ``PATCH /api/tasks/{id}/``;
- users: ``GET/POST /api/users/``; webhooks: ``GET/POST/PATCH /api/webhooks/``.

Reliability: see :mod:`~labelgate.labelstudio.connection`. A POST that may have reached the
server is never blindly repeated: ``import_items`` re-reads which items arrived before it
retries, and ``create_annotation`` only retries a request that was never sent.
"""

from __future__ import annotations

from labelgate.labelstudio.annotations import ANNOTATION_COLUMNS, Annotations
from labelgate.labelstudio.imports import Imports
from labelgate.labelstudio.people import WEBHOOK_ACTIONS, WEBHOOK_SECRET_HEADER
from labelgate.labelstudio.tasks import TASK_COLUMNS
from labelgate.labelstudio.wire import ChoiceControl

__all__ = [
    "ANNOTATION_COLUMNS",
    "TASK_COLUMNS",
    "WEBHOOK_ACTIONS",
    "WEBHOOK_SECRET_HEADER",
    "ChoiceControl",
    "LabelStudio",
]


class LabelStudio(Imports, Annotations):
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
