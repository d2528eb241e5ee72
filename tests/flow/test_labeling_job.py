"""The labeling flow end to end, under prefect_test_harness, on real Delta tables."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.labeling_job import labeling_job
from labelgate.errors import DataError
from labelgate.spec import load_spec
from labelgate.store import LabelStore
from tests.conftest import make_text_frame, write_job

pytestmark = pytest.mark.flow


def _noisy_frame(seed=0):
    frame = make_text_frame(60, seed=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(frame), size=18, replace=False)
    swap = {"sports": "food", "food": "tech", "tech": "sports"}
    frame.loc[flipped, "label"] = frame.loc[flipped, "label"].map(swap)
    unlabeled = rng.choice(np.setdiff1d(np.arange(len(frame)), flipped), size=20, replace=False)
    frame.loc[unlabeled, "label"] = None
    return frame, set(frame.loc[flipped, "id"]), set(frame.loc[unlabeled, "id"])


def test_job_publishes_a_version_with_planted_errors_quarantined(tmp_path):
    frame, flipped, unlabeled = _noisy_frame()
    spec = load_spec(write_job(tmp_path / "job", frame))
    published = labeling_job(spec)
    assert (published.label_set, published.version, published.created) == ("texts", 0, True)

    store = LabelStore()
    rows = store.read("texts", 0).set_index("item_id")
    assert len(rows) == len(frame)
    quarantined = set(rows.index[rows["status"] == "quarantined"])
    found = len(quarantined & flipped) / len(flipped)
    precision = len(quarantined & flipped) / max(len(quarantined), 1)
    assert found >= 0.8 and precision >= 0.7, (found, precision)
    # machine labels: every unlabeled item got one, from the model
    assert set(rows.index[rows["source"] == "model"]) == unlabeled
    assert rows.loc[list(quarantined), "reason"].str.contains("the model gives").all()
    accepted = store.read("texts", accepted_only=True)
    assert "quarantined" not in set(accepted["status"])

    lineage = store.lineage("texts", 0)
    for key in (
        "job",
        "spec_hash",
        "data_fingerprint",
        "model_version",
        "thresholds",
        "audit",
        "counts",
        "rights",
        "parent_version",
    ):
        assert key in lineage, key
    assert lineage["rights"]["license"] == "CC0-1.0"
    assert lineage["parent_version"] is None
    assert lineage["counts"]["quarantined"] == len(quarantined)

    events = store.events(label_set="texts")
    assert len(events) == len(frame) + (len(frame) - len(unlabeled))  # model + given

    report = tmp_path / "runs" / "texts" / "v0"
    text = (report / "report.md").read_text()
    assert "## Counts" in text and "Top" in text and "given vs predicted".lower() in text.lower()
    assert (report / "report.png").stat().st_size > 10_000
    # the run's artifact in the Prefect UI carries the same picture (the worker's folder is
    # seldom where its reader is)
    with get_client(sync_client=True) as client:
        by_key = ArtifactFilter(key=ArtifactFilterKey(any_=["report-texts"]))
        artifacts = client.read_artifacts(artifact_filter=by_key)
    [artifact] = [a for a in artifacts if str(a.flow_run_id) == lineage["flow_run_id"]]
    embedded = re.search(r"!\[report\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", artifact.data)
    assert embedded and base64.b64decode(embedded.group(1)) == (report / "report.png").read_bytes()
    assert f"Plot file: `{report / 'report.png'}`" in artifact.data
    # and the run is named after the job and its label set in the runs list
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(artifact.flow_run_id).name == "text-job -> texts"


def test_rerun_of_the_same_job_adds_no_version_and_no_events(tmp_path):
    frame, _, _ = _noisy_frame(seed=1)
    spec = load_spec(write_job(tmp_path / "job", frame))
    first = labeling_job(spec)
    events = len(LabelStore().events())
    second = labeling_job(spec)
    assert (second.version, second.created) == (first.version, False)
    assert LabelStore().latest_version("texts") == 0
    assert len(LabelStore().events()) == events


def test_bad_input_fails_clearly_and_keeps_the_published_version(tmp_path):
    frame, _, _ = _noisy_frame(seed=2)
    spec = load_spec(write_job(tmp_path / "job", frame))
    labeling_job(spec)
    before = LabelStore().read("texts")

    broken = frame.copy()
    broken.loc[5, "id"] = broken.loc[4, "id"]
    bad_spec = load_spec(write_job(tmp_path / "bad", broken))
    with pytest.raises(DataError, match="duplicate ids"):
        labeling_job(bad_spec)
    store = LabelStore()
    assert store.latest_version("texts") == 0
    assert store.read("texts").equals(before)


def test_crash_during_publish_then_rerun_publishes_once_without_refitting(tmp_path, monkeypatch):
    import tasks.autolabel
    from labelgate import store as store_module

    frame, _, _ = _noisy_frame(seed=3)
    spec = load_spec(write_job(tmp_path / "job", frame))
    real_publish = store_module.LabelStore.publish

    def crash(self, *args, **kwargs):
        raise OSError("disk went away in the middle of the publish")

    monkeypatch.setattr(store_module.LabelStore, "publish", crash)
    with pytest.raises(OSError):
        labeling_job(spec)
    assert LabelStore().latest_version("texts") is None  # nothing half-done was published
    events_after_crash = len(LabelStore().events())

    monkeypatch.setattr(store_module.LabelStore, "publish", real_publish)

    def no_refit(*args, **kwargs):
        raise AssertionError("autolabel ran again instead of using its cached result")

    monkeypatch.setattr(tasks.autolabel, "out_of_sample_proba", no_refit)
    published = labeling_job(spec)
    assert (published.version, published.created) == (0, True)
    assert len(LabelStore().events()) == events_after_crash  # the events were not recorded twice
