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


def test_run_export_diff_against_a_real_prefect_server(tmp_path, prefect_server):
    env = _env(tmp_path, prefect_server)
    spec = write_job(tmp_path / "job", make_text_frame(30))
    result = _cli("run", str(spec), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "texts v0" in result.stdout
    assert "flow run:" in result.stdout and "/runs/flow-run/" in result.stdout

    store = LabelStore(str(tmp_path / "store"))
    run_id = store.lineage("texts", 0)["flow_run_id"]
    assert _flow_run_state(prefect_server, run_id) == "COMPLETED"

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
    assert LabelStore(str(tmp_path / "store")).latest_version("texts") is None
