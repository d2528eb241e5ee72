"""The receiver of Label Studio's webhooks.

``POST /webhooks/labelstudio`` is how a labeling job that waits for people learns that they are
done. Label Studio calls it on every annotation event (``WEBHOOK_ACTIONS``) with the shared
secret in the ``X-Labelgate-Secret`` header (``LabelStudio.add_webhook`` sets it up). The
receiver:

1. checks the secret (``hmac.compare_digest`` against ``LABELGATE_WEBHOOK_SECRET``): 401 with
   no detail when it is missing or wrong; 503 when no secret is configured;
2. answers at once (202), and in a background task checks the suspended ``labeling-job`` runs
   of the event's project and resumes those whose batch is complete
   (``flows.review_sync.resume_complete_runs``, the same decision as the scheduled sync).

Events carry no state that matters: a burst of events for one project runs one check at a time
per project, plus one more if events came in meanwhile (``CoalescedChecks``). A duplicate, a
late or a lost event changes nothing: an event only triggers a check, and the resumed flow
syncs the answers itself (incrementally, from Label Studio's update times; tasks/annotation_sync.py).
The secret is never logged. This route takes the shared secret instead of a bearer token:
Label Studio sends the header that ``add_webhook`` registered.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse

from labelgate.labelstudio import WEBHOOK_ACTIONS, WEBHOOK_SECRET_HEADER
from labelgate.settings import get_settings

logger = logging.getLogger(__name__)


class CoalescedChecks:
    """Run ``check(project_id)`` for webhook events, at most one at a time per project.

    An event that comes while its project's check runs marks the project; the running check
    then goes once more, so the last event is always followed by a full check and a burst of N
    events costs at most two checks, not N.
    """

    def __init__(self, check: Callable[[int], Any]) -> None:
        self._check = check
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._again: set[int] = set()

    def __call__(self, project_id: int) -> None:
        with self._lock:
            if project_id in self._running:
                self._again.add(project_id)
                return
            self._running.add(project_id)
        try:
            while True:
                try:
                    self._check(project_id)
                except Exception:  # a background task has nobody to raise to: log it
                    logger.exception("review check for Label Studio project %s failed", project_id)
                with self._lock:
                    if project_id not in self._again:
                        self._running.discard(project_id)
                        return
                    self._again.discard(project_id)
        except BaseException:
            with self._lock:
                self._running.discard(project_id)
                self._again.discard(project_id)
            raise


def resume_project_jobs(project_id: int) -> list:
    """Resume the suspended labeling jobs of Label Studio project ``project_id`` whose review
    batch is complete; return their flow run ids."""
    from flows.review_sync import resume_complete_runs, suspended_labeling_runs
    from tasks.review import labelstudio_client

    jobs = list(suspended_labeling_runs())
    if not jobs:
        return []
    with labelstudio_client() as client:
        return resume_complete_runs(client, jobs, project_id=project_id)


def event_project_id(payload: Any) -> int | None:
    """The project id of a Label Studio webhook payload (``project.id``, else ``task.project``),
    or None when the payload names none."""
    if not isinstance(payload, dict):
        return None
    candidates = []
    project = payload.get("project")
    candidates.append(project.get("id") if isinstance(project, dict) else project)
    task = payload.get("task")
    if isinstance(task, dict):
        candidates.append(task.get("project"))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def webhook_router(*, check_project: Callable[[int], Any] | None = None) -> APIRouter:
    """The receiver's route. ``check_project`` (project id -> anything) replaces the resume check
    that webhook events trigger (tests)."""
    router = APIRouter(tags=["webhooks"])
    checks = CoalescedChecks(check_project or resume_project_jobs)

    @router.post(
        "/webhooks/labelstudio",
        status_code=202,
        summary="Label Studio annotation events (shared-secret header, not a bearer token)",
        responses={401: {"description": "Missing or wrong secret."}, 503: {"description": "No secret set."}},
    )
    async def labelstudio_webhook(request: Request, background: BackgroundTasks) -> Response:
        secret = get_settings().webhook_secret
        if secret is None or not secret.get_secret_value():
            logger.warning("webhook call refused: LABELGATE_WEBHOOK_SECRET is not set")
            return JSONResponse({"detail": "webhook receiver not configured"}, status_code=503)
        given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(errors="replace"), secret.get_secret_value().encode()):
            return Response(status_code=401)
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"detail": "body is not JSON"}, status_code=400)
        action = payload.get("action") if isinstance(payload, dict) else None
        project_id = event_project_id(payload)
        if action not in WEBHOOK_ACTIONS or project_id is None:
            return JSONResponse({"queued": False, "reason": "not an annotation event of a project"})
        background.add_task(checks, project_id)
        return JSONResponse({"queued": True, "project": project_id}, status_code=202)

    return router
