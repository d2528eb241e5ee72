"""Stage progress for people watching a run.

Every stage task calls back here when it finishes (a Prefect ``on_completion`` hook). The CLI
subscribes a rich progress bar; in a deployment nobody subscribes and the Prefect UI shows the
task states, and the steps inside them as log lines. Listeners get ``(stage_name, state_name)``
when a stage ends, and ``(step, detail)`` while a long step inside one works (:func:`working`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

STAGES = ("ingest", "autolabel", "audit", "gate", "quarantine", "publish", "report")

_listeners: list[Callable[[str, str], None]] = []
logger = logging.getLogger(__name__)


def subscribe(listener: Callable[[str, str], None]) -> Callable[[], None]:
    """Add a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def stage_finished(task, task_run, state) -> None:  # Prefect state-hook signature
    stage = task.name
    for listener in list(_listeners):
        listener(stage, state.name)


def working(step: str, detail: str) -> None:
    """How far a long step inside a stage has got (``working("bots", "bot2: 150 answers")``);
    listeners get ``(step, detail)`` with a step that is not one of :data:`STAGES`. It is logged
    as well (INFO), so a run started from the Prefect UI shows it on the run's page
    (:mod:`labelgate.run_logs`)."""
    logger.info("%s: %s", step, detail)
    for listener in list(_listeners):
        listener(step, detail)
