"""ingest: read the dataset named by the spec and check it before anything trusts it.

``read_table`` reads CSV, Parquet or JSONL from a local path or any fsspec URI, strictly (a
truncated CSV row is an error, never a silent NaN). ``check_table`` runs the dataset checks and
raises one :class:`DataError` listing every problem. ``to_dataset`` turns the checked table into
the arrays the models use.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelgate.errors import DataError, preview
from labelgate.progress import stage_finished
from labelgate.spec import DatasetSpec, LabelingJobSpec, LabelSchema
from validators.dataset_checks import REQUIRED_CHECKS, dataset_checks

UNLABELED = -1


@dataclass(frozen=True)
class Dataset:
    """A checked dataset, as arrays.

    ids: (n,) str; X: (n,) str for text or (n, d) float for tabular;
    given: (n,) int class codes, ``UNLABELED`` (-1) where the file has no label;
    machine_made: (n,) bool, True where the file says a model made the given label
    (``label_source_column``; None: the file does not say); label_source_column: the column that
    said so (None: none did); gold: (n,) int class codes of the known answers
    (``review.gold_path``), ``UNLABELED`` elsewhere (None: no gold file); learned: (n,) int class
    codes people gave in learning rounds (``tasks/learning.py``), ``UNLABELED`` elsewhere (None:
    no learning round ran). Learned labels teach the model and are threshold evidence, but they
    are not given labels: the final review round folds them in as people's labels.
    """

    ids: np.ndarray
    X: np.ndarray
    given: np.ndarray
    classes: list[str]
    kind: str
    fingerprint: str
    source: str
    machine_made: np.ndarray | None = None
    label_source_column: str | None = None
    gold: np.ndarray | None = None
    learned: np.ndarray | None = None

    @property
    def n_labeled(self) -> int:
        return int((self.given != UNLABELED).sum())

    @property
    def training_labels(self) -> np.ndarray:
        """(n,) int: what the model learns from: the given labels, and people's learned labels
        where the file gives none."""
        if self.learned is None:
            return self.given
        return np.where(self.given != UNLABELED, self.given, self.learned)

    @property
    def data_fingerprint(self) -> str:
        """The input file's fingerprint (``fingerprint`` adds the learned labels' to it)."""
        return self.fingerprint.split("-")[0]

    @property
    def learned_mask(self) -> np.ndarray:
        """(n,) bool: items people labeled in learning rounds (their file gives no label)."""
        if self.learned is None:
            return np.zeros(len(self.ids), dtype=bool)
        return (self.learned != UNLABELED) & (self.given == UNLABELED)

    @property
    def n_learned(self) -> int:
        return int(self.learned_mask.sum())

    @property
    def learned_ids(self) -> frozenset[str]:
        return frozenset(self.ids[self.learned_mask].astype(str).tolist())

    def with_learned(self, labels: dict[str, str]) -> Dataset:
        """This dataset with people's labels from a learning round added (item_id -> class name;
        items the file labels keep their given label). The fingerprint changes with them, so the
        cached stages run again on the new labels, and again reuse their results on a rerun."""
        learned = np.full(len(self.ids), UNLABELED) if self.learned is None else self.learned.copy()
        position = {str(item): i for i, item in enumerate(self.ids)}
        code = {c: i for i, c in enumerate(self.classes)}
        for item, label in sorted(labels.items()):
            if self.given[position[item]] == UNLABELED:
                learned[position[item]] = code[label]
        source = self.fingerprint[:16]  # the input file's; the learned labels make the rest
        digest = hashlib.sha256(source.encode() + learned.astype(np.int64).tobytes()).hexdigest()
        return replace(self, learned=learned, fingerprint=f"{source}-{digest[:8]}")

    @property
    def evidence(self) -> np.ndarray:
        """(n,) bool: items whose label may serve as evidence for the machine-label thresholds:
        every given label not made by a model, every label people gave in a learning round, and
        every gold answer."""
        labeled = self.given != UNLABELED
        if self.machine_made is not None:
            labeled = labeled & ~self.machine_made
        labeled = labeled | self.learned_mask
        return labeled if self.gold is None else labeled | (self.gold != UNLABELED)

    @property
    def evidence_labels(self) -> np.ndarray:
        """(n,) int: the label each evidence item is scored against: its gold answer where it has
        one (a known answer beats a given label), else its given (or learned) label."""
        labels = self.training_labels
        return labels if self.gold is None else np.where(self.gold != UNLABELED, self.gold, labels)

    @property
    def gold_answers(self) -> dict[str, str]:
        """item_id -> known answer (class name), for every gold item."""
        if self.gold is None:
            return {}
        known = np.flatnonzero(self.gold != UNLABELED)
        return {str(self.ids[i]): self.classes[self.gold[i]] for i in known}

    @property
    def n_gold(self) -> int:
        return 0 if self.gold is None else int((self.gold != UNLABELED).sum())


def _read_bytes(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"dataset file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read dataset file {path}: {exc}") from None


def read_table(dataset: DatasetSpec) -> tuple[pd.DataFrame, str]:
    """Read the file into a DataFrame (all values as read, ids as strings).

    Returns the table and a fingerprint of the input bytes (sha256, first 16 hex).
    """
    raw = _read_bytes(dataset.path)
    fingerprint = hashlib.sha256(raw).hexdigest()[:16]
    fmt = dataset.resolved_format
    try:
        if fmt == "csv":
            convert = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in (dataset.id_column, dataset.label_column) if c},
                strings_can_be_null=True,
            )
            table = pacsv.read_csv(io.BytesIO(raw), convert_options=convert)
        elif fmt == "jsonl":
            table = pajson.read_json(io.BytesIO(raw))
        else:
            table = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise DataError(f"dataset file {dataset.path} is malformed ({fmt}): {exc}") from None
    frame = table.to_pandas()
    if dataset.id_column in frame.columns:
        ids = frame[dataset.id_column]
        frame[dataset.id_column] = ids.where(ids.isna(), ids.astype(str))
    return frame, fingerprint


def check_table(frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema) -> None:
    """Run every required dataset check; raise one DataError that lists all problems."""
    problems: list[str] = []
    for name in REQUIRED_CHECKS:
        problems += dataset_checks.get(name)(frame, dataset, schema)
        if problems and name in {"required_columns", "non_empty"}:
            break
    if problems:
        raise DataError(f"dataset {dataset.path} failed its checks:\n  " + "\n  ".join(problems))


MACHINE_SOURCES = frozenset({"model", "machine"})
"""Values of ``label_source_column`` (any case) that mark a given label as machine-made."""
LABELGATE_SOURCES = frozenset({"given", "model", "human", "gold"})
"""The ``source`` values of a labelgate label set (``labelsets export``)."""


def label_source_column(frame: pd.DataFrame, dataset: DatasetSpec) -> str | None:
    """The column that says who made each given label: the spec's ``label_source_column``, else
    a column named ``source`` holding only labelgate's values (an exported label set), else None."""
    if not dataset.label_column:
        return None
    if dataset.label_source_column:
        return dataset.label_source_column
    if "source" not in frame.columns or "source" in (
        dataset.id_column,
        dataset.text_column,
        dataset.label_column,
    ):
        return None
    values = set(frame["source"].dropna().astype(str).str.strip().str.lower())
    return "source" if values and values <= LABELGATE_SOURCES else None


def to_dataset(
    frame: pd.DataFrame, dataset: DatasetSpec, schema: LabelSchema, *, fingerprint: str
) -> Dataset:
    """Turn a checked table into arrays; labels become codes in ``schema.classes`` order."""
    if dataset.text_column:
        X = frame[dataset.text_column].astype(str).to_numpy(dtype=object)
    else:
        X = frame[list(dataset.feature_columns or [])].apply(pd.to_numeric).to_numpy(dtype=float)
    given = np.full(len(frame), UNLABELED, dtype=np.int64)
    if dataset.label_column:
        codes = {c: i for i, c in enumerate(schema.classes)}
        labels = frame[dataset.label_column]
        present = labels.notna().to_numpy()
        given[present] = [codes.get(str(v).strip(), UNLABELED) for v in labels[present]]
    made_by = label_source_column(frame, dataset)
    machine_made = None
    if made_by:
        said = frame[made_by].astype("string").str.strip().str.lower()
        machine_made = said.isin(MACHINE_SOURCES).fillna(False).to_numpy(dtype=bool) & (given != UNLABELED)
    return Dataset(
        ids=frame[dataset.id_column].astype(str).to_numpy(dtype=object),
        X=X,
        given=given,
        classes=list(schema.classes),
        kind=dataset.kind,
        fingerprint=fingerprint,
        source=dataset.path,
        machine_made=machine_made,
        label_source_column=made_by,
    )


def load_dataset(dataset: DatasetSpec, schema: LabelSchema) -> Dataset:
    """Read, check and convert: the whole ingest stage."""
    frame, fingerprint = read_table(dataset)
    check_table(frame, dataset, schema)
    return to_dataset(frame, dataset, schema, fingerprint=fingerprint)


# -- Prefect task ---------------------------------------------------------------------------


@task(name="ingest", cache_policy=NO_CACHE, on_completion=[stage_finished])
def ingest(spec: LabelingJobSpec) -> Dataset:
    """Read and check the job's dataset, and the gold answers (``review.gold_path``) against it
    (never cached: the files may have changed)."""
    dataset = load_dataset(spec.dataset, spec.label_schema)
    if not spec.review.gold_path:
        return dataset
    gold = read_answers(
        spec.review.gold_path, dataset, column="label", id_column=spec.dataset.id_column, what="gold"
    )
    code = {c: k for k, c in enumerate(dataset.classes)}
    position = {item: i for i, item in enumerate(dataset.ids)}
    known = np.full(len(dataset.ids), UNLABELED, dtype=np.int64)
    for item, label in gold.items():
        known[position[item]] = code[label]
    return replace(dataset, gold=known)


def read_answers(path: str, dataset: Dataset, *, column: str, id_column: str, what: str) -> dict[str, str]:
    """item_id -> class from a CSV (gold answers or simulation truth), checked against the job."""
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} file {path}: {exc}") from None
    missing = [c for c in (id_column, column) if c not in frame.columns]
    if missing:
        raise DataError(f"{what} file {path}: missing column(s) {preview(missing)}")
    line = frame.index + 2  # the CSV's line numbers (after the header)
    no_id = frame[id_column].isna()
    if no_id.any():
        raise DataError(f"{what} file {path}: no {id_column!r} on line(s) {preview(line[no_id])}")
    twice = frame[id_column].duplicated(keep=False)
    if twice.any():
        lines = pd.Series(line[twice], index=frame.index[twice]).groupby(frame[id_column][twice], sort=False)
        where = [f"{i!r} (lines {', '.join(map(str, at))})" for i, at in lines]
        more = f" (and {len(where) - 5} more)" if len(where) > 5 else ""
        raise DataError(f"{what} file {path}: ids given more than once: {', '.join(where[:5])}{more}")
    unknown_ids = sorted(set(frame[id_column]) - set(dataset.ids))
    if unknown_ids:
        raise DataError(f"{what} file {path}: ids not in the dataset: {preview(unknown_ids)}")
    bad = sorted(set(frame[column].dropna()) - set(dataset.classes))
    if bad:
        raise DataError(f"{what} file {path}: labels not in schema.classes: {preview(bad)}")
    frame = frame.dropna(subset=[column])
    return dict(zip(frame[id_column], frame[column], strict=True))
