"""The progress bar of a deployed run that waits for people, on its page in the Prefect UI.

The wait is a labeling job's longest step: hours, while people label in Label Studio. When the
run suspends (``flows.review_round.wait_for_people``) it makes a Prefect *progress artifact*
(the run's *Artifacts* tab; with the key ``review-<label set>`` on the *Artifacts* page too) and
records its id with the items it waits for (``LabelStore.save_awaited``). Each review-sync
(``flows/review_sync.py``, every 2 minutes) counts the awaited tasks that have their answers and
moves the bar; the run itself sets the last figure when it goes on.

A bar is something to look at, not a stage: when Prefect refuses an update, it is logged and
the run or the sync goes on.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

logger = logging.getLogger(__name__)


def artifact_key(label_set: str) -> str:
    """The artifact key of a label set's wait (Prefect keys: lowercase letters, digits, dashes)."""
    return "review-" + (re.sub(r"[^a-z0-9]+", "-", label_set.lower()).strip("-") or "job")


def progress_text(answered: int, total: int, where: str, *, by: str) -> str:
    """The bar's description: how many of the routed items have their answers (first: the
    artifact card in the Prefect UI shows a line), as of when and according to whom (``by``),
    and where people label them."""
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"**{answered} of {total} routed items answered** ({by}, {at}). People label them at {where}"


def percent(answered: int, total: int) -> float:
    """``answered`` of ``total`` in percent (a batch of nothing is done)."""
    return 100.0 if total <= 0 else round(100.0 * min(answered, total) / total, 1)


def start_wait_progress(
    existing: str | None, label_set: str, answered: int, total: int, where: str, *, log: Any = logger
) -> str | None:
    """Inside the waiting flow run: make the bar (linked to the run), or move the run's
    ``existing`` one (a run that suspends again). Returns the artifact id, None if Prefect
    refused."""
    text = progress_text(answered, total, where, by="when the run suspended")
    try:
        if existing is not None:
            update_progress_artifact(UUID(existing), percent(answered, total), description=text)
            return existing
        return str(
            create_progress_artifact(percent(answered, total), key=artifact_key(label_set), description=text)
        )
    except Exception as exc:  # a bar is not worth a failed run
        log.warning("the wait's progress bar could not be shown: %s", exc)
        return existing


def move_wait_progress(
    artifact: str | None, answered: int, total: int, text: str, *, log: Any = logger
) -> bool:
    """Move the bar ``artifact`` (from anywhere: the review-sync, the run). False when there is
    none or Prefect refused."""
    if artifact is None:
        return False
    try:
        update_progress_artifact(UUID(artifact), percent(answered, total), description=text)
    except Exception as exc:
        log.warning("the wait's progress bar %s could not be updated: %s", artifact, exc)
        return False
    return True
