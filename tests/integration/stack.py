"""Pieces of the local stack for integration tests: a process worker started by
``deploy/worker.sh`` on a work queue of its own, and the labelgate API under ``labelgate serve``.
Both are real processes, stopped when the ``with`` block ends."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.integration.conftest import REPO_ROOT

POOL = "labelgate-process"


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, every: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def process_worker(folder: Path, env: dict[str, str], prefect_api: str) -> Iterator[dict]:
    """``deploy/worker.sh`` (applies deploy/prefect.yaml, starts a worker) on queue ``test-<hex>``.

    ``env`` is the worker's environment (its flow runs inherit it: store, runs folder, ...)."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **env,
        "PREFECT_API_URL": prefect_api,
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # pick runs up quickly
        "LABELGATE_WORKER_STATE": str(folder / "worker"),
        "LABELGATE_WORK_QUEUE": queue,
    }
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        result = subprocess.run(
            ["bash", "deploy/worker.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240
        )
        assert result.returncode == 0, result.stdout + result.stderr
        client.create_work_queue(queue, work_pool_name=POOL)
        try:
            yield {
                "queue": queue,
                "log": folder / "worker" / "worker.log",
                "pid": int((folder / "worker" / "worker.pid").read_text()),
            }
        finally:
            subprocess.run(["bash", "deploy/worker-stop.sh"], cwd=REPO_ROOT, env=env, timeout=60, check=False)
            with contextlib.suppress(Exception):  # an empty queue left behind harms nothing
                client.delete_work_queue_by_id(client.read_work_queue_by_name(queue, work_pool_name=POOL).id)


@contextlib.contextmanager
def labelgate_api(log: Path, env: dict[str, str]) -> Iterator[str]:
    """``labelgate serve`` on a free loopback port with ``env``; yields its base URL."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(REPO_ROOT / ".venv" / "bin" / "labelgate"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"labelgate serve exited with {proc.returncode}\n{tail(log)}", pytrace=False)
        try:
            return httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("the API to answer /health", up, timeout=60, every=0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def apply_deployments(prefect_api: str) -> None:
    """Apply deploy/prefect.yaml (and create its process pool) without starting a worker."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "LABELGATE_REPO": str(REPO_ROOT)}
    prefect = str(REPO_ROOT / ".venv" / "bin" / "prefect")
    pool = subprocess.run(
        [prefect, "--no-prompt", "work-pool", "inspect", POOL], env=env, capture_output=True
    )
    if pool.returncode != 0:
        subprocess.run(
            [prefect, "--no-prompt", "work-pool", "create", POOL, "--type", "process"], env=env, check=True
        )
    result = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
