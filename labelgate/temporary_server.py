"""Prefect's temporary server, started early, for a ``labelgate run`` with no Prefect server set.

Without ``PREFECT_API_URL``, Prefect starts a temporary server on the flow's first API call and
waits for it: the CLI process first imports the server's code, then the server boots in a
subprocess while the run waits (about 10 s of a 100k-item run, BENCHMARKS.md). The CLI instead
starts the same server (Prefect's own command, as ``SubprocessASGIServer`` runs it) when the
command starts and ``PREFECT_API_URL`` is not in the environment, so that it boots on the other
core while the CLI imports the pipeline, and points the run at it (or stops it, if Prefect's
settings name a server after all). It stops when the command exits, as Prefect's does, and also
when the command is killed (Linux: the kernel's parent-death signal); its runs stay in the local
Prefect database.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from labelgate.errors import LabelgateError

_server: tuple[subprocess.Popen, str] | None = None


def start_if_needed() -> bool:
    """Start the temporary server unless ``PREFECT_API_URL`` is set; True if started.

    Only the environment is read here, so that the server starts before Prefect is imported (2 s);
    :func:`in_use` stops it again if Prefect's settings name a server after all (a profile,
    ``prefect.toml``) or forbid a temporary one."""
    global _server
    if _server is not None or os.environ.get("PREFECT_API_URL"):
        return False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    parent = os.getpid()
    process = subprocess.Popen(command, env=env, preexec_fn=lambda: _die_with_parent(parent))
    atexit.register(stop)
    _server = (process, f"http://127.0.0.1:{port}/api")
    return True


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: on Linux, ask the kernel for SIGTERM when the CLI dies, so that
    a CLI killed with SIGKILL (no atexit) does not leave the server running. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the CLI died before the request took effect
        os._exit(1)


@contextlib.contextmanager
def in_use(timeout: float = 60.0) -> Iterator[None]:
    """Wait until the temporary server (if this process started one) answers, and point Prefect
    at it inside the block."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if _server is not None and (settings.api.url or not settings.server.ephemeral.enabled):
        stop()
    if _server is None:
        if settings.api.url:
            _check_reachable(str(settings.api.url))
        yield
        return
    process, api = _server
    _wait_until_healthy(process, api, timeout)
    with temporary_settings(updates={PREFECT_API_URL: api}):
        yield


def _check_reachable(api: str, attempts: int = 3) -> None:
    """Fail with one clear line, rather than Prefect's traceback, when nothing answers at the
    configured server's address. Only a connection that cannot be made counts: what the server
    answers (a cloud workspace may want credentials for ``/health``) is Prefect's business."""
    import httpx

    for attempt in range(attempts):
        try:
            httpx.get(f"{api.rstrip('/')}/health", timeout=5)
            return
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error = exc
            time.sleep(0.5 * (attempt + 1))
    raise LabelgateError(
        f"no Prefect server answers at {api} (PREFECT_API_URL or the Prefect profile): {error}. "
        "Start it (`make stack`, or `prefect server start`), or unset PREFECT_API_URL to let "
        "labelgate start a temporary one for this command"
    )


def _wait_until_healthy(process: subprocess.Popen, api: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabelgateError(
                f"Prefect's temporary server exited with code {process.returncode} before it answered; "
                "start a Prefect server (`make stack`, or `prefect server start`) and set PREFECT_API_URL"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise LabelgateError(
        f"Prefect's temporary server did not answer at {api} within {timeout:.0f} s; start a Prefect "
        "server (`make stack`, or `prefect server start`) and set PREFECT_API_URL"
    )


def stop() -> None:
    """Stop the temporary server (at exit): as Prefect does, terminate, then kill after 5 s."""
    global _server
    if _server is None:
        return
    process, _ = _server
    _server = None
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
