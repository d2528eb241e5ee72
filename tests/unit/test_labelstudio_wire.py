"""The wire format between labelgate and Label Studio (labelgate/labelstudio/wire.py). The calls
themselves are tested against a real server in tests/integration/test_labelstudio.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from labelgate.errors import DataError
from labelgate.labelconfig import ITEM_HASH_KEY, ITEM_ID_KEY, ROUTE_REASON_KEY
from labelgate.labelstudio.wire import (
    ChoiceControl,
    check_items,
    chosen_values,
    content_hash,
    dm_filter,
    dm_params,
    item_id_of,
    task_payload,
    user_ids,
)

CONTROL = ChoiceControl(from_name="label", to_name="text", labels=("cat", "dog"))


def test_a_task_carries_the_item_its_reason_its_content_hash_and_the_model_prediction():
    row = SimpleNamespace(
        item_id=7,
        data={"text": "a cat"},
        route_reason="below threshold",
        prediction="cat",
        prediction_score=0.61,
    )
    task = task_payload(row, CONTROL)
    data = task["data"]
    assert data[ITEM_ID_KEY] == "7" and data[ROUTE_REASON_KEY] == "below threshold"
    assert data[ITEM_HASH_KEY] == content_hash({"text": "a cat"})  # the hash ignores labelgate's own keys
    (prediction,) = task["predictions"]
    assert prediction["score"] == 0.61
    assert prediction["result"][0]["value"] == {"choices": ["cat"]}
    assert prediction["result"][0]["from_name"] == "label" and prediction["result"][0]["to_name"] == "text"
    # no prediction, no reason: no prediction entry and an empty reason, never "nan"
    bare = task_payload(SimpleNamespace(item_id="x", data={"text": "b"}, route_reason=float("nan")), CONTROL)
    assert "predictions" not in bare and bare["data"][ROUTE_REASON_KEY] == ""


def test_the_content_hash_changes_with_what_the_labeler_sees_only():
    sent = {"text": "a", ITEM_ID_KEY: "1", ROUTE_REASON_KEY: "audit"}
    assert content_hash({"text": "a"}) == content_hash(sent)
    assert content_hash({"text": "a"}) != content_hash({"text": "b"})


def test_items_with_duplicate_or_missing_ids_or_no_dict_are_refused_by_name():
    good = pd.DataFrame(
        {"item_id": ["a", "b"], "data": [{"text": "x"}, {"text": "y"}], "route_reason": ["", ""]}
    )
    assert check_items(good)["item_id"].tolist() == ["a", "b"]
    with pytest.raises(DataError, match=r"repeats the ids.*'a'"):
        check_items(good.assign(item_id=["a", "a"]))
    with pytest.raises(DataError, match=r"lack the columns.*route_reason"):
        check_items(good.drop(columns="route_reason"))
    with pytest.raises(DataError, match=r"must hold a dict.*'b'"):
        check_items(good.assign(data=[{"text": "x"}, "y"]))


def test_answers_are_read_from_the_named_control_first():
    result = [
        {"from_name": "other", "value": {"choices": ["dog"]}},
        {"from_name": "label", "value": {"choices": ["cat"]}},
    ]
    assert chosen_values(result, "label") == ["cat"]
    assert chosen_values(result[:1], "label") == ["dog"]  # any choices when the named one is absent
    assert chosen_values(None, "label") == [] and chosen_values([{"value": "text"}], "label") == []


def test_a_task_s_item_id_is_read_as_text_and_a_task_made_elsewhere_has_none():
    task = task_payload(SimpleNamespace(item_id=12, data={"text": "x"}, route_reason="audit"), CONTROL)
    assert item_id_of(task) == "12"
    assert item_id_of({"id": 3, "data": {"text": "made in Label Studio"}}) is None
    assert item_id_of({"id": 4}) is None and item_id_of({"id": 5, "data": None}) is None


def test_annotator_ids_come_as_lists_dicts_or_a_comma_string():
    assert user_ids([1, {"id": 2}, "3"]) == [1, 2, 3]
    assert user_ids("4,5") == [4, 5]  # Label Studio on SQLite
    assert user_ids(None) == [] and user_ids("") == [] and user_ids(["x"]) == []


def test_data_manager_queries_are_json_filters_joined_by_and():
    newer = dm_filter("id", "greater", 10, "Number")
    params = dm_params(3, fields="task_only", filters=[newer], page_size=50)
    assert params["project"] == 3 and params["page_size"] == 50
    query = json.loads(params["query"])
    assert query["filters"]["conjunction"] == "and"
    assert query["filters"]["items"] == [
        {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": 10}
    ]


def test_the_client_from_settings_takes_the_timeout_and_retries_an_operator_set(monkeypatch):
    from labelgate.labelstudio import LabelStudio
    from labelgate.settings import get_settings

    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls.example:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token-of-the-test")
    monkeypatch.setenv("LABELGATE_LABELSTUDIO_TIMEOUT", "120")
    monkeypatch.setenv("LABELGATE_LABELSTUDIO_RETRIES", "1")
    get_settings.cache_clear()
    try:
        with LabelStudio.from_settings() as client:
            assert (client.url, client.timeout, client.retries) == ("http://ls.example:8080", 120.0, 1)
        with LabelStudio.from_settings(retries=7) as client:  # a caller's own choice wins
            assert (client.timeout, client.retries) == (120.0, 7)
        monkeypatch.delenv("LABELGATE_LABELSTUDIO_TIMEOUT")
        monkeypatch.delenv("LABELGATE_LABELSTUDIO_RETRIES")
        get_settings.cache_clear()
        with LabelStudio.from_settings() as client:
            assert (client.timeout, client.retries) == (30.0, 4)  # the defaults
    finally:
        get_settings.cache_clear()
