"""The nightly re-audit, under prefect_test_harness, on real Delta tables."""

from __future__ import annotations

import pytest

from flows.labeling_job import labeling_job
from flows.reaudit import reaudit
from labelgate.spec import load_spec
from labelgate.store import LabelStore
from tests.conftest import make_text_frame, write_job
from tests.flow.test_labeling_job import _noisy_frame

pytestmark = pytest.mark.flow


def test_reaudit_quarantines_what_slipped_through_and_changes_nothing_else(tmp_path):
    frame, flipped, _ = _noisy_frame(seed=4)
    # a job without the audit accepts every given label, the planted errors too
    labeling_job(load_spec(write_job(tmp_path / "job", frame, audit={"enabled": False})))
    store = LabelStore()
    before = store.read("texts", 0).set_index("item_id")
    assert flipped <= set(before.index[before["status"] == "accepted"])

    [result] = reaudit(["texts"])
    assert (result.audited_version, result.version, result.created) == (0, 1, True)
    after = store.read("texts", 1).set_index("item_id")
    newly = set(after.index[(after["status"] == "quarantined") & (before["status"] == "accepted")])
    assert result.newly_quarantined == len(newly)
    assert len(newly & flipped) / len(flipped) >= 0.8, "most planted errors are caught"
    assert len(newly & flipped) / len(newly) >= 0.7, "and few correct labels"
    assert after.loc[sorted(newly), "reason"].str.startswith("re-audit ").all()
    # labels never change, and only accepted -> quarantined moves happen
    assert after["label"].equals(before["label"])
    diff = store.diff("texts", 0, 1)
    assert set(zip(diff["status_a"], diff["status_b"], strict=True)) == {("accepted", "quarantined")}
    lineage = store.lineage("texts", 1)
    assert lineage["job"] == "reaudit" and lineage["parent_version"] == 0
    assert lineage["reaudit"]["newly_quarantined"] == len(newly)


def test_reaudit_publishes_nothing_when_nothing_changed_and_skips_changed_data(tmp_path):
    spec_path = write_job(tmp_path / "job", make_text_frame(40, seed=5), label_set="clean")
    labeling_job(load_spec(spec_path))
    store = LabelStore()

    [result] = reaudit(["clean"])
    assert (result.version, result.created, result.newly_quarantined, result.skipped) == (0, False, 0, None)
    assert store.latest_version("clean") == 0

    # the data file changed since the version: skipped with the reason, nothing published
    write_job(tmp_path / "job", make_text_frame(41, seed=6), label_set="clean")
    [result] = reaudit(["clean"])
    assert result.skipped and "changed since version 0" in result.skipped
    assert store.latest_version("clean") == 0
    [missing] = reaudit(["no-such-set"])
    assert missing.skipped == "no such label set"
