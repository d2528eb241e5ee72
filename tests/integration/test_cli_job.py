"""The `labelgate` command against a real Prefect server (started by deploy/prefect/start.sh)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from labelgate.store import LabelStore
from tests.conftest import make_text_frame, write_job

pytestmark = pytest.mark.integration

LABELGATE = str(Path(sys.executable).parent / "labelgate")


def _cli(*args, env, cwd):
    return subprocess.run(
        [LABELGATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def _env(tmp_path, prefect_server):
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=prefect_server,
        LABELGATE_STORE=str(tmp_path / "store"),
        LABELGATE_RUNS_DIR=str(tmp_path / "runs"),
        COLUMNS="200",
    )
    return env


def _flow_run_state(api_url: str, run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def fetch():
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.type.value

    with temporary_settings({PREFECT_API_URL: api_url}):
        return asyncio.run(fetch())


def _has_log_line(api_url: str, run_id: str, logger: str, start: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return any(log.name == logger and log.message.startswith(start) for log in logs)


def test_run_export_diff_against_a_real_prefect_server(tmp_path, prefect_server):
    env = _env(tmp_path, prefect_server)
    spec = write_job(tmp_path / "job", make_text_frame(30))
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "texts v0" in result.stdout
    assert "flow run:" in result.stdout and "/runs/flow-run/" in result.stdout
    # not a terminal: one line per stage as it ends, in order, rather than a bar drawn at the end
    stages = [line.split(" (")[0] for line in result.stdout.splitlines() if line.startswith("text-job: ")]
    assert [s for s in stages if s.split(": ")[1] in ("ingest", "autolabel", "publish", "report")] == [
        f"text-job: {stage}" for stage in ("ingest", "autolabel", "publish", "report")
    ]
    assert "text-job: ingest (Completed)" in result.stdout
    assert "text-job: out-of-sample (model 1 of" in result.stdout  # a step inside a stage
    # ... shown once: labelgate's INFO lines go to the run's log in the UI, not to the console too
    assert "labelgate.progress" not in result.stderr, result.stderr

    store = LabelStore(str(tmp_path / "store"))
    run_id = store.lineage("texts", 0)["flow_run_id"]
    assert _flow_run_state(prefect_server, run_id) == "COMPLETED"
    assert _has_log_line(prefect_server, run_id, "labelgate.progress", "out-of-sample: model 1 of")

    # a second job on changed data gives version 1; export and diff read them back
    frame = make_text_frame(30)
    swap = {"sports": "food", "food": "tech", "tech": "sports"}
    frame.loc[0, "label"] = swap[frame.loc[0, "label"]]
    spec = write_job(tmp_path / "job", frame)
    assert _cli("run", str(spec), env=env, cwd=tmp_path).returncode == 0

    out = tmp_path / "v0.parquet"
    result = _cli(
        "labelsets", "export", "texts@0", "--format", "parquet", "--output", str(out), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_parquet(out)) == 90

    result = _cli("labelsets", "diff", "texts@0", "texts@1", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert frame.loc[0, "id"] in result.stdout

    listing = _cli("labelsets", "list", env=env, cwd=tmp_path)
    assert "texts" in listing.stdout


def test_bad_spec_and_bad_data_exit_non_zero_with_the_problem_named(tmp_path, prefect_server):
    env = _env(tmp_path, prefect_server)
    spec = write_job(tmp_path / "job", make_text_frame(10), colour="red")
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "colour: unknown key" in result.stderr

    frame = make_text_frame(10)
    frame.loc[2, "label"] = "weather"
    result = _cli("run", str(write_job(tmp_path / "bad", frame)), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "'weather' not in schema.classes" in result.stderr
    assert "Traceback" not in result.stderr  # the problem named, not Prefect's traceback of it
    assert "Nothing was published: label set 'texts' still has no version." in result.stderr
    assert LabelStore(str(tmp_path / "store")).latest_version("texts") is None


def _processes_with(variable: str, value: str) -> list[int]:
    """Pids of live processes whose environment has ``variable=value`` (Linux /proc)."""
    wanted = f"{variable}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_run_without_a_prefect_server_starts_a_temporary_one_and_stops_it(tmp_path):
    """No PREFECT_API_URL: the CLI starts Prefect's temporary server itself (early, while it
    imports the pipeline), the run is recorded in that server's database, and the server is gone
    when the command has exited."""
    import sqlite3

    env = _env(tmp_path, "")
    env.pop("PREFECT_API_URL")
    home = str(tmp_path / "prefect-home")
    env["PREFECT_HOME"] = home
    spec = write_job(tmp_path / "job", make_text_frame(30))
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "texts v0" in result.stdout
    assert "temporary Prefect server" in result.stdout

    run_id = LabelStore(str(tmp_path / "store")).lineage("texts", 0)["flow_run_id"]
    with sqlite3.connect(Path(home) / "prefect.db") as db:
        state = db.execute("select state_type from flow_run where id = ?", (run_id,)).fetchone()
    assert state == ("COMPLETED",)
    assert _processes_with("PREFECT_HOME", home) == []


def test_a_server_named_in_a_prefect_profile_is_used_and_no_temporary_one_is_left(tmp_path, prefect_server):
    """PREFECT_API_URL only in the active Prefect profile: the CLI, which starts a temporary server
    before Prefect's settings are read, stops it again and the run goes to the profile's server."""
    env = _env(tmp_path, prefect_server)
    env.pop("PREFECT_API_URL")
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        f'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "{prefect_server}"\n'
    )
    env["PREFECT_HOME"] = str(home)
    spec = write_job(tmp_path / "job", make_text_frame(30))
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "/runs/flow-run/" in result.stdout  # a link to the profile's server, not "temporary"

    run_id = LabelStore(str(tmp_path / "store")).lineage("texts", 0)["flow_run_id"]
    assert _flow_run_state(prefect_server, run_id) == "COMPLETED"
    assert _processes_with("PREFECT_HOME", str(home)) == []


def test_a_prefect_server_that_does_not_answer_is_one_clear_line_and_nothing_is_published(tmp_path):
    """PREFECT_API_URL names a server that is down: the command says so in one line (no
    traceback), names the address and how to fix it, and publishes nothing (and says so)."""
    from tests.integration.stack import free_port

    dead = f"http://127.0.0.1:{free_port()}/api"
    env = _env(tmp_path, dead)
    spec = write_job(tmp_path / "job", make_text_frame(30))
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Prefect server answers at " + dead)
    assert "unset PREFECT_API_URL" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.rstrip().endswith("Nothing was published: label set 'texts' still has no version.")
    assert LabelStore(str(tmp_path / "store")).names() == []
