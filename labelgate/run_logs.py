"""labelgate's own log lines in the Prefect UI.

Prefect sends the records of its run loggers (``get_run_logger``) to the API, and so to the
run's page in the UI. labelgate's modules log to their own loggers (``labelgate.*``,
``tasks.*``, ``flows.*``): a Label Studio retry, a project created, a progress step such as
"bots: bot2 has given 150 answers". Without this, a run started from the UI shows those lines
only in the worker's log file.

Prefect's own way is the setting ``PREFECT_LOGGING_EXTRA_LOGGERS``; it has to be in every
worker's environment and leaves the loggers at the root's level (WARNING), so INFO lines are
dropped. :func:`send_to_prefect` does it from the flow instead, whatever started the run.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

LOGGERS = ("labelgate", "tasks", "flows")


class RunLogHandler(APILogHandler):
    """Prefect's API handler, for records logged inside a flow or task run only.

    Threads outside a run (a bot labeler, the CLI's own work) log as before, without Prefect's
    "attempted to send logs to the API without a flow run id" warning.
    """

    def emit(self, record: logging.LogRecord) -> None:
        in_a_run = FlowRunContext.get() or TaskRunContext.get()
        if getattr(record, "flow_run_id", None) is None and not in_a_run:
            return
        super().emit(record)


def send_to_prefect(names: tuple[str, ...] = LOGGERS, level: int = logging.INFO) -> None:
    """Send INFO and above of labelgate's loggers to the current Prefect run's log.

    Idempotent: a logger gets one handler, however many runs a process executes, and none when
    it has Prefect's already (``PREFECT_LOGGING_EXTRA_LOGGERS``: each line would show twice). A
    logger already set to a level keeps it.
    """
    for name in names:
        log = logging.getLogger(name)
        if not any(isinstance(h, APILogHandler) for h in log.handlers):
            handler = RunLogHandler()
            handler.setLevel(level)
            log.addHandler(handler)
        if log.level == logging.NOTSET:
            log.setLevel(level)
