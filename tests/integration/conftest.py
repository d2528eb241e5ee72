"""Real servers for integration tests, started through the deploy/ scripts.

Each fixture reuses a server that already answers its health check, and otherwise starts
one and stops it when the test session ends. The tests' servers are not the demo's: they listen
on ``LABELGATE_TEST_PREFECT_PORT`` (4210) and ``LABELGATE_TEST_LABEL_STUDIO_PORT`` (8090) and keep
their state in ``var/test/`` (``LABELGATE_TEST_STATE``), so ``make test`` leaves no test project in
the Label Studio and no test run in the Prefect UI that ``make demo`` or ``make stack`` started.
Label Studio credentials come from the environment or else from ``var/secrets.env``, which
``deploy/secrets.sh`` creates on first use.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = REPO_ROOT / "var" / "secrets.env"
SECRET_NAMES = ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_API_KEY")
TEST_STATE = Path(os.environ.get("LABELGATE_TEST_STATE", REPO_ROOT / "var" / "test")).resolve()
PREFECT_PORT = os.environ.get("LABELGATE_TEST_PREFECT_PORT", "4210")
LABEL_STUDIO_PORT = os.environ.get("LABELGATE_TEST_LABEL_STUDIO_PORT", "8090")
#: what the deploy/ scripts read: the tests' ports and state folders
SERVER_ENV = {
    "PREFECT_PORT": PREFECT_PORT,
    "PREFECT_STATE_DIR": str(TEST_STATE / "prefect"),
    "LABEL_STUDIO_PORT": LABEL_STUDIO_PORT,
    "LABEL_STUDIO_STATE_DIR": str(TEST_STATE / "labelstudio"),
}


class LabelStudioServer(NamedTuple):
    """A running Label Studio: its base URL and the admin's credentials."""

    url: str
    api_key: str
    username: str
    password: str

    def __repr__(self) -> str:  # keep secrets out of pytest's failure output
        return f"LabelStudioServer(url={self.url!r}, username={self.username!r})"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _run(script: str) -> None:
    """Run a deploy/ script with the secrets sourced; fail the session with its output."""
    result = subprocess.run(
        ["bash", "-c", 'source deploy/secrets.sh && exec "$0"', script],
        cwd=REPO_ROOT,
        env={**os.environ, **SERVER_ENV},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script} exited with {result.returncode}\n{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


def _read_secrets() -> dict[str, str]:
    """The values deploy/secrets.sh exports: the environment first, then var/secrets.env."""
    from_file: dict[str, str] = {}
    for line in SECRETS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            from_file[key.strip()] = value
    return {name: os.environ.get(name) or from_file[name] for name in SECRET_NAMES}


def _flush_prefect_workers() -> None:
    """Send the events and logs this process still owes the server before it stops.

    Otherwise Prefect's background workers are still busy at interpreter exit, when pytest has
    closed the streams they log to, or retry a server that is already gone.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=10)
    APILogWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """API URL of a Prefect server (``http://127.0.0.1:<port>/api``)."""
    api_url = f"http://127.0.0.1:{PREFECT_PORT}/api"
    started = not _answers(f"{api_url}/health")
    if started:
        _run("deploy/prefect/start.sh")
    yield api_url
    _flush_prefect_workers()
    if started:
        _run("deploy/prefect/stop.sh")


@pytest.fixture(scope="session")
def labelstudio_server() -> Iterator[LabelStudioServer]:
    """A Label Studio whose admin token is ``LABEL_STUDIO_API_KEY``."""
    url = f"http://127.0.0.1:{LABEL_STUDIO_PORT}"
    started = not _answers(f"{url}/health")
    # start.sh also checks the token of a server that is already up, and creates the secrets.
    _run("deploy/labelstudio/start.sh")
    secrets = _read_secrets()
    yield LabelStudioServer(
        url=url,
        api_key=secrets["LABEL_STUDIO_API_KEY"],
        username=secrets["LABEL_STUDIO_USERNAME"],
        password=secrets["LABEL_STUDIO_PASSWORD"],
    )
    if started:
        _run("deploy/labelstudio/stop.sh")
