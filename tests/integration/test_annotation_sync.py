"""Incremental sync against a real Label Studio: each sync reads only the annotations that are
new or edited since the last one, and the label store's mirror holds each answer once.

Server: Label Studio through the ``labelstudio_server`` fixture; the label store is a temporary
folder. The project is deleted afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest

from flows.review_sync import review_batch_status
from labelgate.labelconfig import label_config
from labelgate.labelstudio import LabelStudio
from labelgate.store import LabelStore
from tasks.annotation_sync import sync_annotations

from .conftest import LabelStudioServer

pytestmark = pytest.mark.integration

CLASSES = ["sports", "food", "tech"]


@pytest.fixture
def ls(labelstudio_server: LabelStudioServer) -> Iterator[tuple[LabelStudio, int]]:
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key, timeout=60) as client:
        project = client.ensure_project(
            title=f"labelgate-test {uuid.uuid4().hex[:12]}", label_config=label_config(CLASSES, kind="text")
        )
        try:
            yield client, project
        finally:
            client.delete_project(project)


def test_each_sync_reads_only_new_and_edited_answers_and_counts_each_once(ls, tmp_path, labelstudio_server):
    client, project = ls
    store = LabelStore(str(tmp_path / "store"))
    items = pd.DataFrame(
        {
            "item_id": [f"item-{i}" for i in range(12)],
            "data": [{"text": f"text {i}"} for i in range(12)],
            "route_reason": "test",
        }
    )
    client.import_items(project, items)
    tasks = client.task_index(project)
    spec = SimpleNamespace(review=SimpleNamespace(annotators_per_item=1))
    for i in range(8):
        client.create_annotation(tasks[f"item-{i}"], CLASSES[i % 3], project_id=project)
    first = sync_annotations(client, store, project, classes=CLASSES)
    assert first.attrs["read"] == 8 and len(first) == 8  # answers saved this very second are in
    assert not review_batch_status(client, spec, project_id=project).complete
    time.sleep(2.5)
    quiet = sync_annotations(client, store, project, classes=CLASSES)  # re-reads the overlap window
    assert quiet.attrs["changed"] == 0 and len(quiet) == 8

    for i in range(8, 11):
        client.create_annotation(tasks[f"item-{i}"], CLASSES[i % 3], project_id=project)
    client.create_annotation(tasks["item-11"], None, project_id=project, was_cancelled=True)  # a skip
    edited = int(first["annotation_id"].iloc[0])
    httpx.patch(
        f"{labelstudio_server.url}/api/annotations/{edited}/",
        headers={"Authorization": f"Token {labelstudio_server.api_key}"},
        json={
            "result": [
                {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["tech"]}}
            ]
        },
        timeout=30,
    ).raise_for_status()
    second = sync_annotations(client, store, project, classes=CLASSES)
    assert second.attrs["read"] == 5 and second.attrs["changed"] == 5  # 3 new, 1 skip, 1 edit
    assert len(second) == 12 and second["annotation_id"].is_unique
    assert second.set_index("annotation_id").at[edited, "label"] == "tech"
    assert (second["status"] == "skipped").sum() == 1
    assert review_batch_status(client, spec, project_id=project).complete  # the skip counts

    time.sleep(2.5)
    third = sync_annotations(client, store, project, classes=CLASSES)  # re-reads the overlap once
    assert third.attrs["changed"] == 0 and len(third) == 12
    fourth = sync_annotations(client, store, project, classes=CLASSES)
    assert fourth.attrs["read"] == 0 and fourth.equals(third)
    # Label Studio's own count matched the mirror's all along: no full re-read so far
    assert not any(f.attrs["resynced"] for f in (first, quiet, second, third, fourth))

    gone = int(second["annotation_id"].iloc[-1])  # a labeler deletes an answer
    httpx.delete(
        f"{labelstudio_server.url}/api/annotations/{gone}/",
        headers={"Authorization": f"Token {labelstudio_server.api_key}"},
        timeout=30,
    ).raise_for_status()
    fifth = sync_annotations(client, store, project, classes=CLASSES)
    assert fifth.attrs["resynced"] and len(fifth) == 11 and gone not in set(fifth["annotation_id"])
