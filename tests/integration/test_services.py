"""The real Label Studio and Prefect servers the deploy/ scripts start.

Servers: Label Studio (deploy/labelstudio/start.sh) and Prefect (deploy/prefect/start.sh).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from .conftest import REPO_ROOT, TEST_STATE, LabelStudioServer

pytestmark = pytest.mark.integration

LABEL_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="spam"/>
    <Choice value="ham"/>
  </Choices>
</View>
"""


def test_label_studio_answers_health(labelstudio_server: LabelStudioServer) -> None:
    response = httpx.get(f"{labelstudio_server.url}/health", timeout=10, trust_env=False)

    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


def test_label_studio_token_from_environment_belongs_to_the_admin(
    labelstudio_server: LabelStudioServer,
) -> None:
    client = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.api_key)

    me = client.users.whoami()

    assert me.email == labelstudio_server.username


def test_label_studio_token_can_create_list_and_delete_a_project(
    labelstudio_server: LabelStudioServer,
) -> None:
    client = LabelStudio(base_url=labelstudio_server.url, api_key=labelstudio_server.api_key)
    title = f"labelgate-integration-{uuid.uuid4().hex[:8]}"

    project = client.projects.create(title=title, label_config=LABEL_CONFIG)
    try:
        listed = {p.id: p.title for p in client.projects.list(page_size=100)}
        assert listed.get(project.id) == title
    finally:
        client.projects.delete(id=project.id)

    assert project.id not in {p.id for p in client.projects.list(page_size=100)}


def test_label_studio_refuses_a_wrong_token(labelstudio_server: LabelStudioServer) -> None:
    wrong_key = "0" * len(labelstudio_server.api_key)
    assert wrong_key != labelstudio_server.api_key
    client = LabelStudio(base_url=labelstudio_server.url, api_key=wrong_key, max_retries=0)

    with pytest.raises(ApiError) as refused:
        client.users.whoami()

    assert refused.value.status_code == 401


def test_label_studio_secrets_stay_out_of_logs_and_process_list(
    labelstudio_server: LabelStudioServer,
) -> None:
    secrets = (labelstudio_server.api_key, labelstudio_server.password)
    logs = sorted((REPO_ROOT / "var").glob("*/*.log")) + sorted(TEST_STATE.glob("*/*.log"))
    assert logs, f"expected the start scripts to write logs under var/ or {TEST_STATE}"
    for log in logs:
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), f"a secret is in {log}"

    pid_file = TEST_STATE / "labelstudio" / "labelstudio.pid"
    if not pid_file.exists() or not Path("/proc").is_dir():
        pytest.skip("Label Studio not started by deploy/labelstudio/start.sh, or no /proc")
    cmdline = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes().decode()
    assert "label-studio" in cmdline
    assert not any(secret in cmdline for secret in secrets)


def test_prefect_server_answers_health(prefect_server: str) -> None:
    response = httpx.get(f"{prefect_server}/health", timeout=10, trust_env=False)

    assert response.status_code == 200
    assert response.json() is True


@flow(name="labelgate-integration-add")
def add(a: int, b: int) -> int:
    return a + b


def test_flow_run_lands_in_the_prefect_server(prefect_server: str) -> None:
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        state = add(2, 3, return_state=True)
        with get_client(sync_client=True) as client:
            api_url = str(client.api_url)
            flow_run = client.read_flow_run(state.state_details.flow_run_id)
            recorded_flow = client.read_flow(flow_run.flow_id)

    assert state.is_completed()
    assert state.result() == 5
    assert api_url.rstrip("/") == prefect_server
    assert recorded_flow.name == "labelgate-integration-add"
    assert flow_run.parameters == {"a": 2, "b": 3}
    assert flow_run.state is not None
    assert flow_run.state.is_completed()
