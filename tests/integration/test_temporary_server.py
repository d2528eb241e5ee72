"""The CLI's temporary Prefect server does not outlive a CLI killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux only"
)

PARENT = """
import time
from labelgate import temporary_server
temporary_server.start_if_needed()
print(temporary_server._server[0].pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except FileNotFoundError:
        return False
    return "Z" not in state.split()[1]  # a zombie has exited; only its exit status is left


def test_a_killed_cli_takes_its_temporary_server_with_it():
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cli = subprocess.Popen([sys.executable, "-c", PARENT], env=env, stdout=subprocess.PIPE, text=True)
    server = int(cli.stdout.readline())
    try:
        assert _alive(server)
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 20
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server), "the temporary server outlived the killed CLI"
    finally:
        if _alive(server):
            os.kill(server, signal.SIGKILL)
