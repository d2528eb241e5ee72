"""The HTTP API without Prefect: auth, spec validation, the data-path allow-list, and label-set
downloads from real Delta tables in a temporary store. Jobs against a real Prefect server and
worker are in tests/integration/test_api_jobs.py."""

from __future__ import annotations

import io
import json
import os

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prefect.settings import PREFECT_API_URL, temporary_settings

from labelgate.api import create_app
from labelgate.api.data_paths import confine_spec, resolve_data_path
from labelgate.errors import SpecError
from labelgate.settings import get_settings
from labelgate.spec import LabelingJobSpec
from labelgate.store import LabelStore
from tests.unit.test_store import _rows

READ, SUBMIT, BOTH = "read-token-1234", "submit-token-5678", "both-token-9012"


@pytest.fixture
def client(monkeypatch, tmp_path):
    tokens = {READ: ["read"], SUBMIT: ["submit"], BOTH: ["read", "submit"]}
    monkeypatch.setenv("LABELGATE_API_TOKENS", json.dumps(tokens))
    monkeypatch.setenv("LABELGATE_DATA_ROOTS", json.dumps([str(tmp_path / "data")]))
    # no Prefect here: a call that gets that far fails fast (connection refused -> 503)
    get_settings.cache_clear()
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield TestClient(create_app())
    get_settings.cache_clear()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def spec_body(path: str = "data.csv", **over) -> dict:
    body = {
        "name": "api-job",
        "dataset": {"path": path, "id_column": "id", "text_column": "text", "label_column": "label"},
        "schema": {"classes": ["a", "b"]},
        "output": {"label_set": "api-set"},
        "rights": {"license": "CC0-1.0", "source": "tests"},
    }
    body.update(over)
    return body


# -- auth ----------------------------------------------------------------------------------


def test_health_needs_no_token(client):
    assert client.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/jobs"),
        ("get", "/jobs/00000000-0000-0000-0000-000000000000"),
        ("post", "/jobs/00000000-0000-0000-0000-000000000000/cancel"),
        ("get", "/label-sets"),
        ("get", "/label-sets/x/versions"),
        ("get", "/label-sets/x/versions/0"),
        ("get", "/label-sets/x/diff?from=0"),
    ],
)
def test_every_route_refuses_a_missing_or_unknown_token_without_detail(client, method, path):
    for headers in ({}, auth("not-a-token"), {"Authorization": f"Basic {READ}"}):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.json() == {"detail": "not authenticated"}
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_without_the_scope_gets_403(client):
    assert client.post("/jobs", json=spec_body(), headers=auth(READ)).status_code == 403
    assert client.get("/label-sets", headers=auth(SUBMIT)).status_code == 403
    assert client.get("/label-sets", headers=auth(READ)).status_code == 200
    assert client.get("/label-sets", headers=auth(BOTH)).status_code == 200


def test_no_tokens_configured_refuses_everything(client, monkeypatch):
    monkeypatch.delenv("LABELGATE_API_TOKENS")
    get_settings.cache_clear()
    assert client.get("/label-sets", headers=auth(READ)).status_code == 401


def test_an_unauthenticated_bad_body_gets_401_not_the_validation_errors(client):
    response = client.post("/jobs", json={"name": 1})
    assert response.status_code == 401


# -- bad input -----------------------------------------------------------------------------


def test_an_invalid_spec_gets_422_with_the_field_paths(client):
    body = spec_body()
    del body["dataset"]["id_column"]
    body["schema"]["classes"] = ["only-one"]
    body["surprise"] = 1
    response = client.post("/jobs", json=body, headers=auth(SUBMIT))
    assert response.status_code == 422
    locs = {tuple(err["loc"]) for err in response.json()["detail"]}
    assert ("body", "dataset", "id_column") in locs
    assert ("body", "schema", "classes") in locs
    assert ("body", "surprise") in locs


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../../etc/passwd", "data/../../secret.csv", "file:///etc/passwd"]
)
def test_a_dataset_path_outside_the_data_roots_gets_400(client, path):
    response = client.post("/jobs", json=spec_body(path), headers=auth(SUBMIT))
    assert response.status_code == 400
    assert "dataset.path" in response.json()["detail"]
    assert "outside the data folders" in response.json()["detail"]


def test_the_gold_path_is_confined_too(client):
    body = spec_body(review={"mode": "labelstudio", "gold_path": "/etc/shadow"})
    response = client.post("/jobs", json=body, headers=auth(SUBMIT))
    assert response.status_code == 400
    assert "review.gold_path" in response.json()["detail"]


def test_prefect_down_gets_503_without_detail(client, tmp_path):
    response = client.post("/jobs", json=spec_body(), headers=auth(SUBMIT))
    assert response.status_code == 503
    assert response.json() == {"detail": "the orchestrator (Prefect) is unreachable"}


def test_no_prefect_server_configured_gets_503(client):
    with temporary_settings(updates={PREFECT_API_URL: None}):
        response = client.get("/jobs", headers=auth(READ))
    assert response.status_code == 503
    assert response.json() == {"detail": "the labeling deployment is not available"}


def test_a_malformed_job_id_gets_422_and_a_bad_idempotency_key_too(client):
    assert client.get("/jobs/not-a-uuid", headers=auth(READ)).status_code == 422
    headers = {**auth(SUBMIT), "Idempotency-Key": "has spaces in it"}
    assert client.post("/jobs", json=spec_body(), headers=headers).status_code == 422


# -- the allow-list itself -----------------------------------------------------------------


def test_paths_resolve_inside_roots_and_nowhere_else(tmp_path):
    root = tmp_path / "data"
    (root / "team").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "escape")
    roots = [str(root), "s3://bucket/in/"]
    assert resolve_data_path("team/x.csv", roots, field="f") == str(root / "team" / "x.csv")
    assert resolve_data_path(str(root / "x.csv"), roots, field="f") == str(root / "x.csv")
    assert resolve_data_path(f"file://{root}/x.csv", roots, field="f") == str(root / "x.csv")
    assert resolve_data_path("s3://bucket/in/x.csv", roots, field="f") == "s3://bucket/in/x.csv"
    for bad in (
        "escape/x.csv",  # a symlink out of the root
        "../secret/x.csv",
        str(tmp_path / "secret" / "x.csv"),
        "s3://bucket/input/x.csv",  # a prefix of the root's name is not inside it
        "s3://bucket/in/../out/x.csv",
        "s3://other/in/x.csv",
        "http://169.254.169.254/latest/meta-data",
    ):
        with pytest.raises(SpecError, match=r"f: .* is outside the data folders"):
            resolve_data_path(bad, roots, field="f")
    with pytest.raises(SpecError):
        resolve_data_path("x.csv", [], field="f")


def test_confine_spec_makes_every_path_absolute(tmp_path):
    spec = LabelingJobSpec.model_validate(
        spec_body(
            review={"mode": "labelstudio", "simulate": {"truth_path": "t.csv", "labelers": [{"accuracy": 1}]}}
        )
    )
    confined = confine_spec(spec, [str(tmp_path)])
    assert confined.dataset.path == str(tmp_path / "data.csv")
    assert confined.review.simulate.truth_path == str(tmp_path / "t.csv")


# -- label sets from real Delta tables -----------------------------------------------------


@pytest.fixture
def two_versions():
    store = LabelStore()
    store.publish(
        "pets", _rows(["cat", "dog", "cow"], ["accepted"] * 3), lineage={"run_key": "a", "job": "j1"}
    )
    rows = _rows(["cat", "cat", "cow"], ["accepted", "quarantined", "accepted"])
    store.publish("pets", rows, lineage={"run_key": "b", "job": "j2"})
    return store


def test_label_sets_and_versions_with_lineage(client, two_versions):
    sets = client.get("/label-sets", headers=auth(READ)).json()
    assert [(s["name"], s["latest_version"]) for s in sets] == [("pets", 1)]
    versions = client.get("/label-sets/pets/versions", headers=auth(READ)).json()
    assert [v["version"] for v in versions] == [1, 0]
    assert versions[0]["lineage"]["job"] == "j2"
    assert versions[0]["lineage"]["parent_version"] == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_version_downloads_in_each_format(client, two_versions, fmt):
    response = client.get(f"/label-sets/pets/versions/0?format={fmt}", headers=auth(READ))
    assert response.status_code == 200
    assert f'filename="pets-v0.{fmt}"' in response.headers["content-disposition"]
    raw = io.BytesIO(response.content)
    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda b: pd.read_json(b, lines=True)}[
        fmt
    ](raw)
    assert sorted(frame["label"]) == ["cat", "cow", "dog"]
    assert set(frame.columns) >= {"item_id", "label", "status", "reason"}


def test_a_download_filtered_by_status(client, two_versions):
    response = client.get("/label-sets/pets/versions/1?status=accepted", headers=auth(READ))
    frame = pd.read_csv(io.BytesIO(response.content))
    assert sorted(frame["item_id"]) == ["i0", "i2"]


def test_diff_between_versions(client, two_versions):
    diff = client.get("/label-sets/pets/diff?from=0&to=1", headers=auth(READ)).json()
    assert diff["counts"] == {"changed": 1}
    assert diff["changes"] == [
        {
            "item_id": "i1",
            "change": "changed",
            "label_a": "dog",
            "status_a": "accepted",
            "label_b": "cat",
            "status_b": "quarantined",
        }
    ]
    assert client.get("/label-sets/pets/diff?from=0", headers=auth(READ)).json()["to"] == 1


def test_unknown_sets_and_versions_get_404_without_the_store_path(client, two_versions, isolated_store):
    for path in (
        "/label-sets/nope/versions",
        "/label-sets/pets/versions/7",
        "/label-sets/nope/versions/0",
        "/label-sets/pets/diff?from=0&to=9",
    ):
        response = client.get(path, headers=auth(READ))
        assert response.status_code == 404, path
        assert str(isolated_store) not in response.text


def test_a_run_prefect_refuses_gets_502_not_unreachable(client, monkeypatch):
    import httpx

    from labelgate.api import job_runs

    async def refused(*args, **kwargs):
        request = httpx.Request("POST", "http://prefect/api/deployments/x/create_flow_run")
        raise httpx.HTTPStatusError("409", request=request, response=httpx.Response(409, request=request))

    monkeypatch.setattr(job_runs, "submit_job", refused)
    response = client.post("/jobs", json=spec_body(), headers=auth(SUBMIT))
    assert response.status_code == 502
    assert "refused the run (409)" in response.json()["detail"]
