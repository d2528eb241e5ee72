"""What crosses the wire between labelgate and Label Studio, as pure functions (no HTTP; the one
adapter that talks to Label Studio is :mod:`labelgate.labelstudio`): the task payload an item
becomes, its content hash, the Data Manager's filters, and the reading of answers, user ids,
times and error bodies that Label Studio sends back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pandas as pd

from labelgate.errors import DataError, preview
from labelgate.labelconfig import ITEM_HASH_KEY, ITEM_ID_KEY, ROUTE_REASON_KEY

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DM_DATETIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Data Manager's filter format (UTC)
_ERROR_TEXT_LIMIT = 600


@dataclass(frozen=True)
class ChoiceControl:
    """The project's ``<Choices>`` control: result names and the classes the config offers."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]


def check_items(items: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(items, pd.DataFrame):
        raise DataError(f"items must be a pandas DataFrame; got {type(items).__name__}")
    missing = [c for c in ("item_id", "data", "route_reason") if c not in items.columns]
    if missing:
        raise DataError(f"items lack the columns {preview(missing)} (have: {preview(list(items.columns))})")
    frame = items.copy()
    if frame["item_id"].isna().any():
        rows = frame.index[frame["item_id"].isna()].tolist()
        raise DataError(f"column 'item_id' is empty at rows {preview(rows)}")
    frame["item_id"] = frame["item_id"].astype(str)
    repeated = frame.loc[frame["item_id"].duplicated(), "item_id"].unique().tolist()
    if repeated:
        raise DataError(f"column 'item_id' repeats the ids {preview(repeated)}: one task per item")
    bad = [i for i, d in zip(frame["item_id"], frame["data"], strict=True) if not isinstance(d, Mapping)]
    if bad:
        raise DataError(f"column 'data' must hold a dict per row; not at item ids {preview(bad)}")
    return frame


def content_hash(data: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex) of a task's data (what the labeler sees), the content hash of an
    item that does not bring its own (``content_hash`` column, see :meth:`LabelStudio.import_items`)."""
    shown = {k: v for k, v in data.items() if k not in (ITEM_ID_KEY, ITEM_HASH_KEY, ROUTE_REASON_KEY)}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:16]


def item_hashes(frame: pd.DataFrame) -> list[str]:
    if "content_hash" in frame.columns:
        return frame["content_hash"].astype(str).tolist()
    return [content_hash(d) for d in frame["data"]]


def item_id_of(task: Mapping[str, Any]) -> str | None:
    """The labelgate item id a Label Studio task carries (``data["item_id"]``), or None for a
    task made outside labelgate."""
    item_id = (task.get("data") or {}).get(ITEM_ID_KEY)
    return None if item_id is None else str(item_id)


def superseded_id(item_id: str, kept_hash: str) -> str:
    """The id a task made from an item's old content keeps once set aside
    (:meth:`LabelStudio.supersede_tasks`): the item's id and the old content's hash."""
    return f"{item_id}@{kept_hash}"


def changed_message(project_id: int, changed: list[str]) -> str:
    return (
        f"{len(changed)} item(s) already have a task in Label Studio project {project_id} made from "
        f"other content: {preview(changed)}. The data file changed them since they were sent for "
        "review, so the answers on those tasks are about the old content. To ask people again, "
        "set review.changed_items: ask_again (the old tasks and their answers are kept, set "
        "aside); or give the changed items new ids, or label them in a new label set."
    )


def task_payload(row: Any, control: ChoiceControl) -> dict[str, Any]:
    data = dict(row.data)
    given = getattr(row, "content_hash", None)
    data[ITEM_HASH_KEY] = content_hash(data) if _missing(given) else str(given)
    data[ITEM_ID_KEY] = str(row.item_id)
    reason = getattr(row, "route_reason", None)
    data[ROUTE_REASON_KEY] = "" if _missing(reason) else str(reason)
    task: dict[str, Any] = {"data": data}
    prediction = getattr(row, "prediction", None)
    if not _missing(prediction):
        entry: dict[str, Any] = {
            "result": [
                {
                    "from_name": control.from_name,
                    "to_name": control.to_name,
                    "type": "choices",
                    "value": {"choices": [str(prediction)]},
                }
            ]
        }
        score = getattr(row, "prediction_score", None)
        if not _missing(score):
            entry["score"] = float(score)
        version = getattr(row, "model_version", None)
        if not _missing(version):
            entry["model_version"] = str(version)
        task["predictions"] = [entry]
    return task


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def chosen_values(result: object, from_name: str) -> list[str]:
    """The chosen values of a result list; prefers the named control, else any choices."""
    if not isinstance(result, list):
        return []
    picked: list[str] = []
    fallback: list[str] = []
    for region in result:
        if not isinstance(region, Mapping):
            continue
        value = region.get("value")
        values = value.get("choices") if isinstance(value, Mapping) else None
        if not isinstance(values, list):
            continue
        target = picked if region.get("from_name") == from_name else fallback
        target.extend(str(v) for v in values)
    return picked or fallback


def dm_params(project_id: int, *, fields: str, filters: Sequence[dict], page_size: int) -> dict[str, Any]:
    query = {"filters": {"conjunction": "and", "items": list(filters)}}
    return {
        "project": project_id,
        "fields": fields,
        "page_size": page_size,
        "page": 1,
        "resolve_uri": "false",
        "query": json.dumps(query),
    }


def dm_filter(column: str, operator: str, value: Any, kind: str) -> dict[str, Any]:
    return {"filter": f"filter:tasks:{column}", "operator": operator, "type": kind, "value": value}


def user_id(value: object) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def user_ids(value: object) -> list[int]:
    """The Data Manager's ``annotators``: a list of ids, dicts, or "1,2" on SQLite."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    ids = [user_id(v) for v in value] if isinstance(value, list) else []
    return [i for i in ids if i is not None]


def parse_time(value: object) -> datetime:
    if not isinstance(value, str) or not value:
        return EPOCH
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def server_time(response: httpx.Response) -> datetime:
    """The server's clock from the ``Date`` header (whole seconds), else ours."""
    try:
        moment = parsedate_to_datetime(response.headers["date"])
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


def error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip() or response.reason_phrase
    else:
        if isinstance(body, Mapping):
            parts = [str(body.get("detail") or "")]
            if body.get("validation_errors"):
                parts.append(dumps(body["validation_errors"]))
            text = " ".join(p for p in parts if p) or dumps(body)
        else:
            text = dumps(body)
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + " ..."


def dumps(payload: Any) -> str:
    return json.dumps(payload, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot send a {type(value).__name__} to Label Studio as JSON")


def squash(config: str) -> str:
    return "".join(config.split())
