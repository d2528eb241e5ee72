"""The API's OpenAPI schema, fuzzed with schemathesis against ``labelgate serve`` on a real
Prefect server (the deployments applied, no worker on the queue the API submits to, so the
fuzzer's accepted jobs wait and are deleted at the end).

Every generated request is sent with a token holding both scopes and must get no 5xx and a body
that matches the schema; schemathesis' ``ignored_auth`` check sends it again without and with a
wrong token, which must be refused. The webhook route, which takes Label Studio's shared secret
instead of a token, is checked for that secret."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import WorkQueueFilter, WorkQueueFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance

from labelgate.labelstudio import WEBHOOK_SECRET_HEADER
from tests.integration.stack import apply_deployments, labelgate_api

pytestmark = pytest.mark.integration

TOKEN = uuid.uuid4().hex


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory, prefect_server) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api-fuzz")
    (folder / "data").mkdir()
    apply_deployments(prefect_server)
    queue = f"fuzz-{uuid.uuid4().hex[:8]}"  # nobody polls it
    env = {
        "PREFECT_API_URL": prefect_server,
        "LABELGATE_STORE": str(folder / "store"),
        "LABELGATE_WORK_QUEUE": queue,
        "LABELGATE_DATA_ROOTS": json.dumps([str(folder / "data")]),
        "LABELGATE_API_TOKENS": json.dumps({TOKEN: ["read", "submit"]}),
        "LABELGATE_WEBHOOK_SECRET": uuid.uuid4().hex,
    }
    try:
        with labelgate_api(folder / "api.log", env) as url:
            yield url
        assert "Traceback" not in (folder / "api.log").read_text()
    finally:
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_server}),
            get_client(sync_client=True) as client,
        ):
            runs = client.read_flow_runs(
                work_queue_filter=WorkQueueFilter(name=WorkQueueFilterName(any_=[queue])), limit=200
            )
            for run in runs:
                with contextlib.suppress(Exception):
                    client.delete_flow_run(run.id)


def test_no_server_errors_and_auth_always_enforced(fuzzed_api):
    # schemathesis' pytest loader (from_fixture) does not run under pytest 9, so each operation's
    # hypothesis strategy is driven here directly
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            if case.path == "/webhooks/labelstudio":
                for wrong in ({}, {WEBHOOK_SECRET_HEADER: "wrong"}):
                    assert case.call(base_url=fuzzed_api, headers=wrong).status_code == 401
                return
            case.call_and_validate(
                base_url=fuzzed_api,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance, ignored_auth],
            )

        fuzz()


def test_every_route_but_health_declares_its_auth(fuzzed_api):
    spec = httpx.get(f"{fuzzed_api}/openapi.json", trust_env=False).json()
    open_routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not operation.get("security"):
                open_routes.append(f"{method.upper()} {path}")
    assert sorted(open_routes) == ["GET /health", "POST /webhooks/labelstudio"]
