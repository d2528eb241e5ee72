"""The review-sync flow's housekeeping against a real Prefect server: the records of runs that
ended without forgetting what they waited for are removed, those of runs still alive are kept."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelled, Paused, Scheduled

from flows.review_sync import forget_finished_waits
from labelgate.store import LabelStore

pytestmark = pytest.mark.integration


@flow(name="labelgate-test-waiting")
def waiting() -> None:
    """Never run: its runs are given states directly."""


def test_records_of_runs_that_ended_or_vanished_are_removed_and_live_ones_kept(
    prefect_server, isolated_store
):
    store = LabelStore()
    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        runs = {name: client.create_flow_run(waiting, state=Scheduled()) for name in ("cancelled", "paused")}
        suspended = Paused(reschedule=True, pause_key="review-0")
        client.set_flow_run_state(runs["paused"].id, suspended, force=True)
        # a person cancelled this one from the Prefect UI while it waited: it never forgot its record
        client.set_flow_run_state(runs["cancelled"].id, Cancelled(), force=True)
        for name, run in runs.items():
            store.save_awaited(str(run.id), [f"{name}-item"], project=1)
        gone = str(uuid.uuid4())  # a run deleted from the server
        store.save_awaited(gone, ["gone-item"], project=1)
        store.save_awaited("not-a-run-id", ["other-item"], project=1)
        assert store.awaited_by_any_run(1) == {"cancelled-item", "paused-item", "gone-item", "other-item"}

        forgotten = forget_finished_waits(store)
        assert sorted(forgotten) == sorted([str(runs["cancelled"].id), gone])
        assert store.awaited_by_any_run(1) == {"paused-item", "other-item"}
        assert forget_finished_waits(store) == []  # nothing more to remove
