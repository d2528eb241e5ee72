"""labelgate's own loggers forward to the Prefect run's log (the integration test in
``tests/integration/test_deployed_review.py`` reads them back from the server)."""

from __future__ import annotations

import logging
import warnings

import pytest

from labelgate import run_logs


@pytest.fixture(autouse=True)
def _loggers_restored():
    before = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
        for name in run_logs.LOGGERS
    }
    yield
    for name, (level, handlers) in before.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers


def test_each_logger_gets_one_handler_however_many_runs_set_it_up():
    run_logs.send_to_prefect()
    run_logs.send_to_prefect()
    for name in run_logs.LOGGERS:
        log = logging.getLogger(name)
        assert sum(isinstance(h, run_logs.RunLogHandler) for h in log.handlers) == 1
        assert log.getEffectiveLevel() <= logging.INFO


def test_a_line_logged_outside_any_run_is_not_sent_and_warns_nothing():
    run_logs.send_to_prefect()
    with warnings.catch_warnings():
        # Prefect's own handler warns "attempted to send logs to the API without a flow run id"
        warnings.simplefilter("error")
        logging.getLogger("labelgate.bots").info("bot1 has given 50 answers")
    handler = next(
        h for h in logging.getLogger("labelgate").handlers if isinstance(h, run_logs.RunLogHandler)
    )
    record = logging.LogRecord("labelgate.bots", logging.INFO, __file__, 1, "x", None, None)
    # and Prefect's handler does warn on the same record: the guard is what keeps it quiet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        super(run_logs.RunLogHandler, handler).emit(record)
    assert any("flow run id" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_a_logger_prefect_sends_already_gets_no_second_handler():
    from prefect.logging.handlers import APILogHandler

    # PREFECT_LOGGING_EXTRA_LOGGERS=flows, in a process that has run no flow yet
    logging.getLogger("flows").handlers[:] = [APILogHandler()]
    run_logs.send_to_prefect()
    assert sum(isinstance(h, APILogHandler) for h in logging.getLogger("flows").handlers) == 1
