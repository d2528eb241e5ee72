"""The Label Studio adapter and the bot labelers against a real Label Studio.

Server: Label Studio, started by deploy/labelstudio/start.sh through the ``labelstudio_server``
fixture (``LABELGATE_TEST_LABEL_STUDIO_PORT``, default 8090). Each test works in its own project
(uuid title) and deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from unittest.mock import patch
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest

from flows.review_sync import review_batch_status
from labelgate.bots import BotLabeler
from labelgate.errors import DataError, ServiceError
from labelgate.labelconfig import label_config
from labelgate.labelstudio import LabelStudio
from labelgate.store import LabelStore
from tasks.annotation_sync import restore_unmoved, set_aside_in_mirror, sync_annotations

from .conftest import LabelStudioServer

pytestmark = pytest.mark.integration

CLASSES = ["sports", "food", "tech"]


@pytest.fixture
def client(labelstudio_server: LabelStudioServer) -> Iterator[LabelStudio]:
    with LabelStudio(labelstudio_server.url, labelstudio_server.api_key, timeout=60) as ls:
        yield ls


@pytest.fixture
def project(client: LabelStudio) -> Iterator[int]:
    """A fresh text project with the three classes, deleted after the test."""
    project_id = client.ensure_project(
        title=f"labelgate-test {uuid.uuid4().hex[:12]}", label_config=label_config(CLASSES, kind="text")
    )
    yield project_id
    client.delete_project(project_id)


def _items(n: int, *, start: int = 0, predictions: bool = True) -> pd.DataFrame:
    ids = [f"item-{i:05d}" for i in range(start, start + n)]
    frame = pd.DataFrame(
        {
            "item_id": ids,
            "data": [{"text": f"text of {i}"} for i in ids],
            "route_reason": "model confidence 0.41 < threshold 0.80",
        }
    )
    if predictions:
        frame["prediction"] = [CLASSES[i % 3] for i in range(start, start + n)]
        frame["prediction_score"] = 0.41
        frame["model_version"] = "logreg-v1"
    return frame


def _truth(frame: pd.DataFrame) -> dict[str, str]:
    return {item: CLASSES[int(item.split("-")[1]) % 3] for item in frame["item_id"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rerun_reuses_the_project_and_updates_a_changed_config(client: LabelStudio) -> None:
    title = f"labelgate-test {uuid.uuid4().hex[:12]}"
    first = client.ensure_project(title=title, label_config=label_config(CLASSES, kind="text"))
    try:
        again = client.ensure_project(title=title, label_config=label_config(CLASSES, kind="text"))
        changed = client.ensure_project(
            title=title,
            label_config=label_config([*CLASSES, "other"], kind="text"),
            instructions="Pick the topic.",
        )

        assert first == again == changed
        assert client.choice_control(first).labels == (*CLASSES, "other")
        same_title = client._json("GET", "/api/projects/", params={"title": title})["results"]
        assert [p["id"] for p in same_title] == [first]
    finally:
        client.delete_project(first)


def test_import_of_2000_items_is_chunked_idempotent_and_carries_predictions(
    client: LabelStudio, project: int, monkeypatch
) -> None:
    from labelgate import progress

    said: list[tuple[str, str]] = []
    monkeypatch.setattr(progress, "_listeners", [lambda step, detail: said.append((step, detail))])
    items = _items(2000)
    calls: list[str] = []
    client._http.event_hooks["request"].append(
        lambda request: calls.append(f"{request.method} {request.url.path}")
    )

    created = client.import_items(project, items, chunk_size=500)
    assert said == [("import", f"{n} of 2000 items checked, {n} new tasks") for n in (500, 1000, 1500, 2000)]
    imports = [c for c in calls if c.endswith("/import")]
    created_again = client.import_items(project, items, chunk_size=500)
    created_extra = client.import_items(project, _items(2010), chunk_size=500)  # 10 new
    index = client.task_index(project)

    assert (created, created_again, created_extra) == (2000, 0, 10)
    assert imports == [f"POST /api/projects/{project}/import"] * 4
    assert not any("prediction" in c for c in calls)  # no call per prediction
    assert len(index) == 2010 and len(set(index.values())) == 2010
    assert set(index) == set(_items(2010)["item_id"])

    task = client._json("GET", f"/api/tasks/{index['item-00004']}/")
    assert task["data"]["item_id"] == "item-00004"
    assert task["data"]["route_reason"].startswith("model confidence")
    [prediction] = task["predictions"]
    assert prediction["result"][0]["value"]["choices"] == [CLASSES[4 % 3]]
    assert prediction["score"] == pytest.approx(0.41)
    assert prediction["model_version"] == "logreg-v1"


def test_an_item_whose_content_changed_since_its_task_was_made_is_named_not_reused(
    client: LabelStudio, project: int
) -> None:
    """Task identity is the item id; the task also keeps its content hash, so an item the data
    file changed since people were asked about it is an error naming it, not a silent reuse of
    answers about the old content."""
    items = _items(1200)
    client.import_items(project, items, chunk_size=500)
    # a legacy task, made before labelgate kept a content hash, is never reported
    client._json(
        "POST",
        f"/api/projects/{project}/import",
        json=[{"data": {"text": "old", "item_id": "legacy-1", "route_reason": "r"}}],
    )
    edited = _items(1210)  # 10 new items, and two whose text changed
    edited.at[3, "data"] = {"text": "another text"}
    edited.at[1100, "data"] = {"text": "yet another text"}
    legacy = pd.DataFrame({"item_id": ["legacy-1"], "data": [{"text": "new"}], "route_reason": "r"})
    with_legacy = pd.concat([edited, legacy], ignore_index=True)

    assert client.changed_items(project, with_legacy, chunk_size=500) == ["item-00003", "item-01100"]
    assert client.changed_items(project, items) == []
    with pytest.raises(DataError, match=r"2 item\(s\) already have a task .*'item-00003', 'item-01100'"):
        client.import_items(project, with_legacy, chunk_size=500)
    index = client.task_index(project)
    assert len(index) == 1211  # the 10 new items were imported, nothing twice
    task = client._json("GET", f"/api/tasks/{index['item-00003']}/")
    assert task["data"]["text"] == "text of item-00003"  # the old task is left as it was
    # an item's own content hash (the raw item, not its rendering) is what the task keeps
    own = _items(1).assign(content_hash="abc")
    other = client.ensure_project(
        title=f"labelgate-test {uuid.uuid4().hex[:12]}", label_config=label_config(CLASSES, kind="text")
    )
    try:
        client.import_items(other, own)
        assert client.changed_items(other, own) == []
        assert client.changed_items(other, own.assign(content_hash="abd")) == ["item-00000"]
    finally:
        client.delete_project(other)


def test_a_changed_item_asked_again_gets_a_new_task_and_its_old_answers_are_kept_aside(
    client: LabelStudio, project: int, tmp_path
) -> None:
    """``review.changed_items: ask_again``: the old task keeps its answers under another id, is
    offered to nobody, and the item gets one new task; the mirror moves the old answers too, and
    a rerun sets nothing aside twice and makes no duplicate."""
    items = _items(5)
    client.import_items(project, items)
    index = client.task_index(project)
    client.create_annotation(index["item-00002"], "food", project_id=project)
    store = LabelStore(str(tmp_path / "store"))
    before = sync_annotations(client, store, project, classes=CLASSES)
    assert before["item_id"].tolist() == ["item-00002"]

    edited = items.copy()
    edited.at[2, "data"] = {"text": "corrected text"}
    old_hash = client._json("GET", f"/api/tasks/{index['item-00002']}/")["data"]["item_hash"]
    moved = client.changed_tasks(project, edited)
    assert moved == {index["item-00002"]: f"item-00002@{old_hash}"}
    assert set_aside_in_mirror(client, store, project, moved) == 1
    assert client.supersede_tasks(project, moved) == 1
    assert client.supersede_tasks(project, moved) == 0  # a rerun after a crash: set aside once
    assert client.import_items(project, edited) == 1

    old = client._json("GET", f"/api/tasks/{index['item-00002']}/")
    assert old["data"]["item_id"] == f"item-00002@{old_hash}" and old["data"]["text"] == "text of item-00002"
    assert old["data"]["superseded_item_id"] == "item-00002" and old["is_labeled"]
    after = client.task_index(project)
    assert len(after) == 6 and after["item-00002"] != index["item-00002"]
    assert client._json("GET", f"/api/tasks/{after['item-00002']}/")["data"]["text"] == "corrected text"
    # the old answer is kept, under the old task's new id, in Label Studio and in the mirror
    answers = sync_annotations(client, store, project, classes=CLASSES)
    assert answers["item_id"].tolist() == [f"item-00002@{old_hash}"]
    assert client.fetch_annotations(project)["item_id"].tolist() == [f"item-00002@{old_hash}"]
    # a rerun: nothing changed any more, nothing new; the set-aside answers stay set aside
    assert client.changed_tasks(project, edited) == {}
    assert client.import_items(project, edited) == 0
    assert restore_unmoved(client, store, project, edited["item_id"].tolist()) == 0


def test_answers_a_crash_left_half_set_aside_come_back_when_the_item_changes_back(
    client: LabelStudio, project: int, tmp_path
) -> None:
    """A crash between the mirror's move and Label Studio's (``ask_again``), then the data file
    changed back: the task never left the item, so its answers return to it in the mirror."""
    items = _items(3)
    client.import_items(project, items)
    index = client.task_index(project)
    client.create_annotation(index["item-00001"], "tech", project_id=project)
    store = LabelStore(str(tmp_path / "store"))
    sync_annotations(client, store, project, classes=CLASSES)
    edited = items.copy()
    edited.at[1, "data"] = {"text": "corrected text"}
    moved = client.changed_tasks(project, edited)
    assert set_aside_in_mirror(client, store, project, moved) == 1  # then the run dies
    lost = sync_annotations(client, store, project, classes=CLASSES)
    assert lost["item_id"].str.startswith("item-00001@").all()  # the item looks unanswered

    assert client.changed_tasks(project, items) == {}  # the data file changed back
    assert restore_unmoved(client, store, project, items["item_id"].tolist()) == 1
    back = sync_annotations(client, store, project, classes=CLASSES)
    assert back[["item_id", "label"]].values.tolist() == [["item-00001", "tech"]]
    assert restore_unmoved(client, store, project, items["item_id"].tolist()) == 0
    assert client.task_items(project, [index["item-00001"], 10**9]) == {index["item-00001"]: "item-00001"}


def test_bots_annotations_are_attributed_and_synced_incrementally(
    client: LabelStudio, project: int, labelstudio_server: LabelStudioServer, monkeypatch
) -> None:
    from labelgate import bots, progress

    monkeypatch.setattr(bots, "PROGRESS_EVERY", 2)
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(progress, "_listeners", [lambda step, detail: said.append((step, detail))])
    items = _items(12, predictions=False)
    truth = _truth(items)
    client.import_items(project, items)
    run = uuid.uuid4().hex[:8]
    perfect = BotLabeler(f"perfect-{run}@bots.labelgate.local", accuracy=1.0)
    wrong = BotLabeler(f"wrong-{run}@bots.labelgate.local", accuracy=0.0, confusion={0: 1, 1: 2, 2: 0})
    noisy = BotLabeler(f"noisy-{run}@bots.labelgate.local", accuracy=0.7, seed=3)
    bots = [perfect, wrong, noisy]

    first_round = [bot.work(client, project, truth=truth, classes=CLASSES, limit=5) for bot in bots]
    time.sleep(1.1)  # the cursor keeps back the current second (Date header resolution)
    first = client.fetch_annotations(project, settle=0)
    second_round = [bot.work(client, project, truth=truth, classes=CLASSES) for bot in bots]
    third_round = [bot.work(client, project, truth=truth, classes=CLASSES) for bot in bots]
    late = BotLabeler(f"late-{run}@bots.labelgate.local", accuracy=1.0)
    late_count = late.work(client, project, truth=truth, classes=CLASSES, max_per_task=3)
    time.sleep(1.1)
    second = client.fetch_annotations(project, since=first.attrs["cursor"], settle=0)

    assert first_round == [5, 5, 5] and second_round == [7, 7, 7]
    # a long step says how far it got
    assert said[:2] == [("bots", f"{perfect.email} has given {n} answers") for n in (2, 4)]
    assert third_round == [0, 0, 0] and late_count == 0  # never twice; k=3 reached
    assert len(first) == 15 and len(second) == 21
    assert not set(first["annotation_id"]) & set(second["annotation_id"])
    everything = pd.concat([first, second], ignore_index=True)
    assert everything.groupby("annotator")["item_id"].nunique().to_dict() == {bot.email: 12 for bot in bots}
    assert (everything["status"] == "ok").all()
    by_bot = {
        email: dict(zip(g["item_id"], g["label"], strict=True))
        for email, g in everything.groupby("annotator")
    }
    assert by_bot[perfect.email] == truth
    assert by_bot[wrong.email] == {i: CLASSES[(CLASSES.index(t) + 1) % 3] for i, t in truth.items()}

    # An edited annotation comes back (same id, new label) after the cursor.
    edited = second.iloc[0]
    new_label = next(c for c in CLASSES if c != edited["label"])
    control = client.choice_control(project)
    response = httpx.patch(
        f"{labelstudio_server.url}/api/annotations/{edited['annotation_id']}/",
        headers={"Authorization": f"Token {labelstudio_server.api_key}"},
        timeout=30,
        json={
            "result": [
                {
                    "from_name": control.from_name,
                    "to_name": control.to_name,
                    "type": "choices",
                    "value": {"choices": [new_label]},
                }
            ]
        },
    )
    response.raise_for_status()
    time.sleep(1.1)
    third = client.fetch_annotations(project, since=second.attrs["cursor"], settle=0)

    assert third[["annotation_id", "label", "annotator"]].values.tolist() == [
        [edited["annotation_id"], new_label, edited["annotator"]]
    ]


def test_skips_empty_and_out_of_schema_answers_get_a_status_not_a_crash(
    client: LabelStudio, project: int
) -> None:
    client.import_items(project, _items(5, predictions=False))
    tasks = client.task_index(project)
    user = client.ensure_user(f"odd-{uuid.uuid4().hex[:8]}@bots.labelgate.local")
    answers = {
        "item-00000": dict(choice=None, was_cancelled=True),
        "item-00001": dict(choice=None),
        "item-00002": dict(choice="weather"),
        "item-00003": dict(choice="tech"),
        "item-00004": dict(choice="food"),
    }
    for item_id, answer in answers.items():
        client.create_annotation(tasks[item_id], project_id=project, completed_by=user, **answer)
    time.sleep(1.1)

    frame = client.fetch_annotations(project, settle=0, classes=["sports", "food"])

    got = frame.set_index("item_id")[["status", "label", "raw_label"]]
    assert got.loc["item-00000"].tolist() == ["skipped", None, None]
    assert got.loc["item-00001"].tolist() == ["empty", None, None]
    assert got.loc["item-00002"].tolist() == ["unknown_label", None, "weather"]
    assert got.loc["item-00003"].tolist() == ["unknown_label", None, "tech"]  # not in classes
    assert got.loc["item-00004"].tolist() == ["ok", "food", "food"]


def test_webhook_is_added_once_per_url(client: LabelStudio, project: int) -> None:
    # Label Studio refuses loopback and private URLs while SSRF protection is on (its default).
    url = f"http://1.1.1.1/labelgate-test/{uuid.uuid4().hex[:8]}"

    first = client.add_webhook(project, url, secret="s3cret-one")
    again = client.add_webhook(project, url, secret="s3cret-two")

    hooks = [h for h in client._json("GET", "/api/webhooks/", params={"project": project}) if h["url"] == url]
    assert first == again and [h["id"] for h in hooks] == [first]
    assert hooks[0]["headers"] == {"X-Labelgate-Secret": "s3cret-two"}
    assert set(hooks[0]["actions"]) >= {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


def test_a_down_server_fails_after_retries_naming_the_url_not_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "tok-" + uuid.uuid4().hex
    url = f"http://127.0.0.1:{_free_port()}"
    down = LabelStudio(url, token, retries=2, backoff=0.01, timeout=2)

    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceError) as failure:
        down.ensure_project(title="never", label_config=label_config(CLASSES, kind="text"))

    message = str(failure.value)
    assert url in message and "/api/projects/" in message and "3 attempts" in message
    assert "is Label Studio running there?" in message and "LABEL_STUDIO_URL" in message
    assert token not in message and token not in caplog.text and token not in repr(down)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2


@contextlib.contextmanager
def _slow_proxy(upstream: str, delay: float) -> Iterator[str]:
    """A TCP relay in front of the real Label Studio that holds back each connection's first
    answer for ``delay`` seconds: a slow server, as a loaded one is."""
    target = urlsplit(upstream)

    class Relay(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection((target.hostname, target.port)) as up:
                held = True
                while True:
                    ready, _, _ = select.select([self.request, up], [], [], 30)
                    if not ready:
                        return
                    for end in ready:
                        data = end.recv(65536)
                        if not data:
                            return
                        if end is up and held:
                            time.sleep(delay)
                            held = False
                        (self.request if end is up else up).sendall(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_slow_server_is_waited_for_up_to_the_timeout_then_retried_then_reported(
    labelstudio_server: LabelStudioServer, project: int, caplog: pytest.LogCaptureFixture
) -> None:
    key = labelstudio_server.api_key
    with _slow_proxy(labelstudio_server.url, delay=0.5) as url, LabelStudio(url, key, timeout=5) as slow:
        assert slow.count_tasks(project) == 0  # slow, but within the timeout: no error

    with (
        _slow_proxy(labelstudio_server.url, delay=4) as url,
        LabelStudio(url, key, timeout=1, retries=2, backoff=0.01) as slower,
        caplog.at_level(logging.WARNING),
        pytest.raises(ServiceError) as failure,
    ):
        slower.count_tasks(project)
    message = str(failure.value)
    assert url in message and "no answer within 1" in message and "3 attempts" in message
    assert "is Label Studio running" not in message  # it is: it is slow
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 2
    assert key not in message and key not in caplog.text


def test_a_wrong_token_fails_at_once_with_label_studio_s_message(
    labelstudio_server: LabelStudioServer,
) -> None:
    token = "0" * 40
    wrong = LabelStudio(labelstudio_server.url, token, retries=3, backoff=5)

    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"HTTP 401.*Invalid token") as failure:
        wrong.task_index(1)

    assert time.monotonic() - started < 5  # a 4xx is not retried
    assert token not in str(failure.value)


def test_5xx_answers_are_retried_then_reported_with_the_status() -> None:
    answers = iter([503, 502, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        body = {"tasks": [], "total": 0} if status == 200 else {"detail": "overloaded"}
        return httpx.Response(status, json=body)

    flaky = LabelStudio(
        "http://ls.test", "k" * 40, retries=2, backoff=0.01, transport=httpx.MockTransport(handler)
    )
    assert flaky.task_index(7) == {}

    always = LabelStudio(
        "http://ls.test",
        "k" * 40,
        retries=1,
        backoff=0.01,
        transport=httpx.MockTransport(lambda r: httpx.Response(500, text="boom")),
    )
    with pytest.raises(ServiceError, match=r"GET http://ls.test/api/tasks/ answered HTTP 500") as failure:
        always.task_index(7)
    assert "is Label Studio running" not in str(failure.value)  # it is: it answered


def test_a_loopback_webhook_url_is_added_once_or_refused_with_the_setting_that_allows_it(
    client: LabelStudio, project: int
) -> None:
    # deploy/labelstudio/start.sh decides whether Label Studio's SSRF protection is on.
    try:
        first = client.add_webhook(project, "http://127.0.0.1:9/hook", secret="s3cret-three")
    except ServiceError as failure:
        assert "SSRF_PROTECTION_ENABLED=false" in str(failure)
        assert "s3cret-three" not in str(failure)
    else:
        assert client.add_webhook(project, "http://127.0.0.1:9/hook", secret="s3cret-three") == first


def test_a_task_asked_for_one_more_answer_is_offered_again_until_it_has_it(
    client: LabelStudio, project: int
) -> None:
    frame = _items(3)
    client.import_items(project, frame)
    tasks = client.list_tasks(project).set_index("item_id")
    first, second = (client.ensure_user(f"{name}@labelgate.local") for name in ("adj1", "adj2"))
    for item in frame["item_id"]:
        client.create_annotation(
            int(tasks.at[item, "task_id"]), "food", project_id=project, completed_by=first
        )

    def state(item: str) -> tuple[int, bool]:
        task = client._json("GET", f"/api/tasks/{int(tasks.at[item, 'task_id'])}/")
        return int(task["overlap"]), bool(task["is_labeled"])

    one_each = SimpleNamespace(review=SimpleNamespace(annotators_per_item=1))
    assert state("item-00000") == (1, True)
    assert review_batch_status(client, one_each, project_id=project).complete
    assert client.ask_for_more_answers(project, {"item-00000": 2, "not-an-item": 2}) == 1
    assert state("item-00000") == (2, False)  # Label Studio's label stream offers it again
    assert state("item-00001") == (1, True)  # the others stay done
    assert client.ask_for_more_answers(project, {"item-00000": 2}) == 0  # asked already: no request
    # the review-sync does not resume the run while the extra answer is missing
    status = review_batch_status(client, one_each, project_id=project)
    assert not status.complete and status.answered == 2
    # its exact count for the progress bar lists the awaited tasks only, by item id, in chunks
    awaited = frozenset({"item-00000", "item-00002"})
    status = review_batch_status(client, one_each, project_id=project, awaited=awaited, exact=True)
    assert (status.tasks, status.answered, status.short) == (2, 1, 1)
    listed = [t["item_id"] for t in client.iter_tasks(project, unlabeled=True, items=["item-00000", "nope"])]
    assert listed == ["item-00000"]
    with patch("labelgate.labelstudio.tasks.IN_LIST_CHUNK", 1):
        listed = [t["item_id"] for t in client.iter_tasks(project, items=["item-00002", "item-00001"])]
    assert sorted(listed) == ["item-00001", "item-00002"]  # one query per chunk, none lost
    client.create_annotation(
        int(tasks.at["item-00000", "task_id"]), "food", project_id=project, completed_by=second
    )
    assert state("item-00000") == (2, True)
    assert review_batch_status(client, one_each, project_id=project).complete


def test_tasks_no_run_asks_about_are_retired_from_the_label_stream_and_offered_again_when_routed(
    client: LabelStudio, project: int
) -> None:
    """``retire_tasks`` keeps Label Studio's own label stream (``/api/projects/{id}/next/``, what
    "Label All Tasks" serves a person) from handing out tasks nobody needs; answers are never
    touched; ``ask_for_more_answers(only_raise=True)`` offers a retired task again."""
    frame = _items(5)
    client.import_items(project, frame)
    tasks = client.list_tasks(project).set_index("item_id")
    someone = client.ensure_user("retire-someone@labelgate.local")
    begun = "item-00001"
    client.create_annotation(
        int(tasks.at[begun, "task_id"]), "food", project_id=project, completed_by=someone
    )

    def served() -> set[str]:
        """Every task the label stream hands the admin, each skipped so that the next one comes."""
        out: set[str] = set()
        while True:
            try:
                task = client._json("GET", f"/api/projects/{project}/next/")
            except ServiceError as exc:
                assert "no tasks" in str(exc).lower() or "404" in str(exc)
                break
            out.add(task["data"]["item_id"])
            client._json(
                "POST", f"/api/tasks/{task['id']}/annotations/", json={"result": [], "was_cancelled": True}
            )
        return out

    retired = client.retire_tasks(project, keep={"item-00000"})
    assert sorted(retired) == ["item-00002", "item-00003", "item-00004"]  # not the one begun
    assert client.retire_tasks(project, keep={"item-00000"}) == []  # retired already: no request
    assert served() == {"item-00000"}  # item-00001 has its one answer; the retired are passed over
    time.sleep(1.1)  # the cursor keeps back the current second (Date header resolution)
    assert len(client.fetch_annotations(project, settle=0).query("status == 'ok'")) == 1  # kept

    # a later run routes item-00003 again: it is offered again; item-00001 asks for no more
    assert client.ask_for_more_answers(project, {"item-00003": 1, "item-00001": 1}, only_raise=True) == 1
    assert served() == {"item-00003"}
    # only_raise never lowers what a task asks for
    client.ask_for_more_answers(project, {"item-00001": 3})
    assert client.ask_for_more_answers(project, {"item-00001": 1}, only_raise=True) == 0

    # a batch accepted as it stands retires its own items' tasks only, begun ones too: item-00001
    # (1 answer of 3) then wants the answer it has; item-00005 is not the batch's
    assert client.import_items(project, _items(6)) == 1
    assert client.retire_tasks(project, keep=set(), only={"item-00001"}) == []  # begun: kept
    assert client.retire_tasks(project, keep=set(), begun=True, only={"item-00001"}) == ["item-00001"]
    assert {t["item_id"]: t["overlap"] for t in client.iter_tasks(project)}["item-00001"] == 1
    assert served() == {"item-00005"}
