"""Checks that gate a dataset before any label is trusted.

Each check takes the raw table and the spec's dataset/schema and returns a list of problems
(empty when the data passes). Every problem names the column and the offending rows, so the
user can fix the file. Rows are numbered from 1, in file order (the header is not a row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labelgate.errors import preview
from labelgate.spec import DatasetSpec, LabelSchema
from validators.registry import Registry

dataset_checks = Registry("dataset check")


def _rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, id_column: str) -> str:
    bad = frame.loc[np.asarray(mask)]
    positions = np.flatnonzero(np.asarray(mask)) + 1
    ids = bad[id_column].astype(str).tolist() if id_column in bad else []
    where = f"rows {preview(positions.tolist())}"
    return f"{where} (ids {preview(ids)})" if ids else where


@dataset_checks.register("required_columns")
def required_columns(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    wanted = [dataset.id_column]
    wanted += [dataset.text_column] if dataset.text_column else list(dataset.feature_columns or [])
    wanted += [c for c in (dataset.label_column, dataset.label_source_column) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if not missing:
        return []
    return [f"missing column(s) {preview(missing)}; the file has {preview(list(frame.columns), limit=12)}"]


@dataset_checks.register("non_empty")
def non_empty(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    return [] if len(frame) else ["the dataset has no rows"]


@dataset_checks.register("unique_ids")
def unique_ids(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    ids = frame[dataset.id_column]
    problems = []
    missing = ids.isna() | (ids.astype(str).str.strip() == "")
    if missing.any():
        problems.append(f"column {dataset.id_column!r}: empty id at {_rows(frame, missing, '')}")
    dup = ids.duplicated(keep=False) & ~missing
    if dup.any():
        values = sorted(set(ids[dup].astype(str)))
        problems.append(
            f"column {dataset.id_column!r}: duplicate ids {preview(values)} at "
            f"rows {preview((np.flatnonzero(dup.to_numpy()) + 1).tolist())}"
        )
    return problems


@dataset_checks.register("known_labels")
def known_labels(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    if not dataset.label_column:
        return []
    labels = frame[dataset.label_column]
    present = labels.notna() & (labels.astype(str).str.strip() != "")
    unknown = present & ~labels.astype(str).isin(schema.classes)
    if not unknown.any():
        return []
    values = sorted(set(labels[unknown].astype(str)))
    return [
        f"column {dataset.label_column!r}: label(s) {preview(values)} not in schema.classes "
        f"{schema.classes} at {_rows(frame, unknown, dataset.id_column)}"
    ]


@dataset_checks.register("non_empty_text")
def non_empty_text(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    if not dataset.text_column:
        return []
    text = frame[dataset.text_column]
    empty = text.isna() | (text.astype(str).str.strip() == "")
    if not empty.any():
        return []
    return [
        f"column {dataset.text_column!r}: empty or missing text at {_rows(frame, empty, dataset.id_column)}"
    ]


@dataset_checks.register("numeric_features")
def numeric_features(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    problems = []
    for column in dataset.feature_columns or []:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            problems.append(
                f"column {column!r}: missing or non-numeric value at {_rows(frame, bad, dataset.id_column)}"
            )
    return problems


@dataset_checks.register("two_classes")
def two_classes(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> list[str]:
    if not dataset.label_column:
        return [
            "no label_column: the models learn from existing labels, so at least two classes "
            "need labeled examples"
        ]
    labels = frame[dataset.label_column]
    known = labels[labels.astype(str).isin(schema.classes)].astype(str)
    counts = known.value_counts()
    if len(counts) < 2:
        seen = ", ".join(f"{c!r}" for c in counts.index) or "none"
        return [
            f"column {dataset.label_column!r}: labeled examples of at least two classes are "
            f"needed to train a model; found {seen}"
        ]
    return []


#: Checks every job runs, in this order. A failing check stops the ones after it only where
#: they depend on it (columns must exist before their values are checked).
REQUIRED_CHECKS = [
    "required_columns",
    "non_empty",
    "unique_ids",
    "known_labels",
    "non_empty_text",
    "numeric_features",
    "two_classes",
]
