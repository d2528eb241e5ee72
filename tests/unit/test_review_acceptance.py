"""Retiring the tasks of a batch accepted as it stands never stops the run from publishing.

The retiring itself runs against the real Label Studio in
``tests/integration/test_deployed_review.py -k accepts_the_batch``; here Label Studio is down.
"""

from __future__ import annotations

from prefect.logging import disable_run_logger

from labelgate.errors import ServiceError
from tasks import review


class _Unreachable:
    """A Label Studio adapter whose server does not answer (what the real one raises)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def retire_tasks(self, project, keep, begun=False, only=None):
        raise ServiceError("Label Studio GET http://127.0.0.1:9/api/tasks/: not reachable after 3 attempts")


def test_label_studio_down_after_an_acceptance_is_a_warning_not_a_failure(monkeypatch, isolated_store):
    monkeypatch.setattr(review, "labelstudio_client", _Unreachable)
    with disable_run_logger():
        assert review.retire_after_acceptance.fn(5, ["t0000"]) == []
