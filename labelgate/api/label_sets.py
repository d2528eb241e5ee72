"""Label sets over HTTP: list them, list a set's versions with their lineage, download one
version (streamed, as CSV, Parquet or JSONL) and compare two versions.

Downloads stream the Delta table in record batches, so a large version never sits whole in the
API's memory (Parquet goes through a spooled temporary file, as its footer comes last).
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from labelgate.api.auth import require
from labelgate.errors import StoreError
from labelgate.store import LabelStore

NAME = Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="The label set's name.")
VERSION = Path(ge=0, le=2**31 - 1, description="A version of the label set (its Delta version).")
MEDIA = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
CHUNK = 1 << 20

router = APIRouter(prefix="/label-sets", tags=["label sets"], dependencies=[Depends(require("read"))])


class LabelSetSummary(BaseModel):
    name: str
    latest_version: int | None
    links: dict[str, str]


class LabelSetVersion(BaseModel):
    version: int
    timestamp: datetime
    rows: int | None = None
    lineage: dict[str, Any] = Field(description="Where the version came from (see the README).")
    links: dict[str, str]


class VersionDiff(BaseModel):
    name: str
    from_version: int = Field(alias="from")
    to_version: int = Field(alias="to")
    counts: dict[str, int] = Field(description="Items per kind of change: added, removed, changed.")
    changes: list[dict[str, Any]] = Field(description="item_id, change, label_a, status_a, label_b, status_b")
    truncated: bool


def _store() -> LabelStore:
    return LabelStore()


def _missing(name: str, version: int | None = None) -> HTTPException:
    what = f"label set {name!r}" + (f" has no version {version}" if version is not None else " not found")
    return HTTPException(status_code=404, detail=what)


def _latest(store: LabelStore, name: str) -> int:
    version = store.latest_version(name)
    if version is None:
        raise _missing(name)
    return version


@router.get("", response_model=list[LabelSetSummary], summary="List the label sets")
def list_label_sets(request: Request) -> list[LabelSetSummary]:
    store = _store()
    base = str(request.base_url).rstrip("/")
    return [
        LabelSetSummary(
            name=name,
            latest_version=store.latest_version(name),
            links={"versions": f"{base}/label-sets/{name}/versions"},
        )
        for name in store.names()
    ]


@router.get("/{name}/versions", response_model=list[LabelSetVersion], summary="A label set's versions")
def list_versions(request: Request, name: Annotated[str, NAME]) -> list[LabelSetVersion]:
    store = _store()
    _latest(store, name)
    base = str(request.base_url).rstrip("/")
    return [
        LabelSetVersion(
            **entry,
            links={"download": f"{base}/label-sets/{name}/versions/{entry['version']}?format=csv"},
        )
        for entry in store.versions(name)
    ]


@router.get(
    "/{name}/versions/{version}",
    summary="Download one version",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in MEDIA.values()}}},
)
def download_version(
    name: Annotated[str, NAME],
    version: Annotated[int, VERSION],
    format: Annotated[Literal["csv", "parquet", "jsonl"], Query(description="File format.")] = "csv",
    status: Annotated[
        Literal["accepted", "quarantined", "needs_review"] | None,
        Query(description="Only items of this status (accepted: the labels fit for training)."),
    ] = None,
) -> StreamingResponse:
    store = _store()
    if version > _latest(store, name):
        raise _missing(name, version)
    try:
        dataset = store.arrow_dataset(name, version)
    except StoreError:
        raise _missing(name, version) from None
    row_filter = pc.field("status") == status if status else None
    batches = dataset.to_batches(filter=row_filter)
    writer = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}[format]
    filename = f"{name}-v{version}{'-' + status if status else ''}.{format}"
    return StreamingResponse(
        writer(batches, dataset.schema),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{name}/diff", response_model=VersionDiff, summary="Compare two versions")
def diff_versions(
    name: Annotated[str, NAME],
    from_version: Annotated[int, Query(alias="from", ge=0, le=2**31 - 1)],
    to_version: Annotated[
        int | None, Query(alias="to", ge=0, le=2**31 - 1, description="Default: latest.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many changed items.")] = 1000,
) -> VersionDiff:
    store = _store()
    latest = _latest(store, name)
    to_version = latest if to_version is None else to_version
    for v in (from_version, to_version):
        if v > latest:
            raise _missing(name, v)
    changes = store.diff(name, from_version, to_version)
    counts = {k: int(v) for k, v in changes["change"].value_counts().items()}
    head = changes.head(limit).astype(object).where(changes.head(limit).notna(), None)
    return VersionDiff.model_validate(
        {
            "name": name,
            "from": from_version,
            "to": to_version,
            "counts": counts,
            "changes": head.to_dict(orient="records"),
            "truncated": len(changes) > limit,
        }
    )


# -- streaming writers -----------------------------------------------------------------------


def _csv_chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    buffer = io.BytesIO()
    with pa_csv.CSVWriter(buffer, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _jsonl_chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    for batch in batches:
        lines = (json.dumps(row, default=str, ensure_ascii=False) for row in batch.to_pylist())
        text = "\n".join(lines)
        if text:
            yield (text + "\n").encode()


def _parquet_chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    with tempfile.SpooledTemporaryFile(max_size=64 * CHUNK) as spool:
        with pq.ParquetWriter(spool, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk
