"""``LabelingJobSpec``: the one description of a labeling job.

The same pydantic model is the YAML/JSON file on disk, the Prefect flow parameter (rendered as a
form in the Prefect UI), the HTTP API body and the CLI input. Unknown keys are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labelgate.errors import SpecError

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetSpec(_Strict):
    path: str = Field(description="CSV, Parquet or JSONL file: a local path or any fsspec URI.")
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        default=None, description="File format; guessed from the extension when left out."
    )
    id_column: str = Field(description="Column with a unique id per item.")
    text_column: str | None = Field(default=None, description="Column with the text to label.")
    feature_columns: list[str] | None = Field(
        default=None, description="Numeric columns, for tabular data (instead of text_column)."
    )
    label_column: str | None = Field(
        default=None, description="Existing labels, if any; they get audited like any other."
    )
    label_source_column: str | None = Field(
        default=None,
        description=(
            "Column saying who made each existing label. Labels marked `model` or `machine` "
            "(a machine label, e.g. in a `labelgate labelsets export`) are audited and trained on "
            "like the others but are never evidence for the machine-label thresholds: a model "
            "cannot vouch for machine labels. Left out, a column named `source` holding only "
            "labelgate's values (given, model, human, gold) is used."
        ),
    )

    @model_validator(mode="after")
    def _one_input_kind(self) -> DatasetSpec:
        if (self.text_column is None) == (not self.feature_columns):
            raise ValueError("give exactly one of text_column or feature_columns")
        if self.label_source_column and not self.label_column:
            raise ValueError("label_source_column says who made the labels in label_column: set both")
        return self

    @property
    def kind(self) -> Literal["text", "tabular"]:
        return "text" if self.text_column is not None else "tabular"

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        suffixes = [s.lower() for s in Path(self.path.split("?")[0]).suffixes]
        for fmt, exts in {"csv": {".csv"}, "parquet": {".parquet", ".pq"}}.items():
            if exts & set(suffixes):
                return fmt
        if {".jsonl", ".ndjson"} & set(suffixes):
            return "jsonl"
        raise SpecError(
            f"dataset.path {self.path!r}: cannot tell the format from the extension; "
            "set dataset.format to one of csv, parquet, jsonl"
        )


class LabelSchema(_Strict):
    classes: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=2, description="The allowed labels, at least two."
    )
    instructions: str = Field(default="", description="Guidance shown to human labelers.")

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        seen = {c for c in classes if classes.count(c) > 1}
        if seen:
            raise ValueError(f"classes must be unique; repeated: {sorted(seen)}")
        return classes


class AutolabelSpec(_Strict):
    target_accuracy: float = Field(
        default=0.98,
        gt=0.5,
        le=1.0,
        description="Machine labels are accepted only where the estimated accuracy reaches this.",
    )
    n_folds: int = Field(default=5, ge=2, le=20, description="K for out-of-sample probabilities.")
    seed: int = Field(default=0, description="Seed for folds and models (runs are reproducible).")


class AuditSpec(_Strict):
    enabled: bool = Field(default=True, description="Run confident learning over every label.")


class SimulatedLabeler(_Strict):
    accuracy: float = Field(ge=0, le=1, description="Share of answers that match the truth.")
    seed: int = Field(default=0, description="Seed of this labeler's answers.")


class SimulationSpec(_Strict):
    """Bot labelers: real Label Studio users that answer through the API (demo, tests, benchmarks)."""

    truth_path: str = Field(description="CSV with the id column and a `true_label` column.")
    labelers: list[SimulatedLabeler] = Field(min_length=1)


class LearningSpec(_Strict):
    """Learning rounds before the routing (``tasks/learning.py``)."""

    rounds: int = Field(
        default=0,
        ge=0,
        le=20,
        description="At most this many learning rounds: people label a random batch of the items "
        "the model is unsure of, the model learns from their answers and the thresholds are tuned "
        "again, before the rest is routed (0: route at once).",
    )
    batch_share: float = Field(
        default=0.02, gt=0, le=1, description="Items per learning round, as a share of all items."
    )
    stop_share: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="No more learning rounds once the thresholds accept this share of the items "
        "nobody has labeled.",
    )


class ReviewSpec(_Strict):
    mode: Literal["none", "labelstudio"] = Field(
        default="none",
        description="'none' publishes without people; 'labelstudio' sends items to Label Studio.",
    )
    annotators_per_item: int = Field(
        default=1, ge=1, le=10, description="k people per item (labelgate enforces the overlap)."
    )
    adjudication_margin: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Checked machine labels (the audit sample) count as wrong only once people's "
        "answers against them lead by this many; until then one more person looks (1: one answer "
        "decides). Left out: the smallest margin at which people's coinciding slips stay under a "
        "fifth of the target's error rate, for labelers right 90% of the time (2 classes at 0.99: 3; "
        "10 classes: 2).",
    )
    max_annotators_per_item: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Most people asked about one item, the extra ones included (active learning, "
        "adjudication); left out: annotators_per_item + 2.",
    )
    audit_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of auto-accepted machine labels sent to people to measure their accuracy "
        "(at least as many as can verify autolabel.target_accuracy, 0.98: 149; 0 turns the audit off).",
    )
    probe: bool = Field(
        default=True,
        description="When no evidence certifies a class's threshold, people first check a random "
        "sample of its most confident machine labels (150 at target 0.95) instead of labeling all "
        "of them; the ones the sample certifies are accepted, the rest go to people (tasks/probe.py).",
    )
    gold_path: str | None = Field(
        default=None, description="CSV of items with known answers (id column, `label`), mixed in."
    )
    display: Literal["auto", "digit_image"] = Field(
        default="auto", description="'digit_image' renders 64 pixel features as an 8x8 image."
    )
    changed_items: Literal["stop", "ask_again"] = Field(
        default="stop",
        description="An item this run sends to people whose task was made from other content (the "
        "data file changed it since): 'stop' fails the run naming the items, nothing published; "
        "'ask_again' sets the old task aside, answers kept, and makes a new task for the new content.",
    )
    simulate: SimulationSpec | None = Field(
        default=None, description="Let bot labelers do the review (demo, tests, benchmarks)."
    )
    learning: LearningSpec = Field(
        default_factory=LearningSpec,
        description="Learning rounds: people label small random batches of what the model is "
        "unsure of, and it learns from them, before the rest is routed.",
    )

    @model_validator(mode="after")
    def _learning_needs_people(self) -> ReviewSpec:
        if self.learning.rounds and self.mode != "labelstudio":
            raise ValueError(
                f"review.learning.rounds is {self.learning.rounds} but review.mode is {self.mode!r}: "
                "learning rounds need people (mode: labelstudio)"
            )
        return self

    @model_validator(mode="after")
    def _room_for_the_overlap(self) -> ReviewSpec:
        if (
            self.max_annotators_per_item is not None
            and self.max_annotators_per_item < self.annotators_per_item
        ):
            raise ValueError(
                f"max_annotators_per_item ({self.max_annotators_per_item}) is under "
                f"annotators_per_item ({self.annotators_per_item})"
            )
        return self


class OutputSpec(_Strict):
    label_set: str = Field(pattern=_NAME, description="Name of the versioned label set.")


class RightsSpec(_Strict):
    license: str = Field(min_length=1, description="Licence of the data, e.g. CC-BY-4.0.")
    source: str = Field(min_length=1, description="Where the data came from.")
    allowed_uses: list[str] = Field(
        default_factory=lambda: ["training", "evaluation"],
        description="Uses the licence allows, e.g. training, evaluation.",
    )
    expires: date | None = Field(default=None, description="Date the rights end, if any.")


class CheckSpec(_Strict):
    """One screening check, by its registered name (``validators/screening.py``)."""

    name: str = Field(description="Name of a screening check, e.g. personal_data, near_duplicates.")
    action: Literal["quarantine", "block", "report"] = Field(
        default="quarantine",
        description="'quarantine' keeps flagged items out of the accepted view with the reason; "
        "'block' stops the job before anything is published; 'report' only reports them.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters of the check.")

    @model_validator(mode="after")
    def _known_check(self) -> CheckSpec:
        import inspect

        from validators.screening import screening_checks

        check = screening_checks.get(self.name)  # SpecError listing the valid names
        accepted = [
            p.name
            for p in inspect.signature(check).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "kind"
        ]
        unknown = sorted(set(self.params) - set(accepted))
        if unknown:
            raise ValueError(
                f"check {self.name!r}: unknown parameter(s) {unknown}; it takes {accepted or 'none'}"
            )
        empty = np.array([], dtype=object)
        try:  # a dry run on no items checks the parameters' values too
            check(empty, empty, empty, kind="text", **self.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"check {self.name!r}: bad parameters {self.params}: {exc}") from None
        return self


class DriftSpec(_Strict):
    """Compare each run with the previous version of the same label set (``validators/drift.py``)."""

    enabled: bool = Field(default=True, description="Compare with the previous version, if there is one.")
    p_value: float = Field(
        default=0.01, gt=0, lt=1, description="Class distribution drifts when the chi-square p < this."
    )
    psi_bound: float = Field(
        default=0.2, gt=0, description="Confidence or input statistics drift when their PSI > this."
    )
    audit_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Audit share of auto-accepted machine labels when drift is found (replaces "
        "review.audit_share when larger).",
    )


class ValidationSpec(_Strict):
    """Which checks gate the data and the machine labels, and what a failure does."""

    checks: list[CheckSpec] | None = Field(
        default=None,
        description="Screening checks to run; when left out: degenerate_inputs, conflicting_duplicates "
        "and personal_data quarantine, exact_duplicates reports. An empty list runs none.",
    )
    drift: DriftSpec = Field(default_factory=DriftSpec)
    low_machine_accuracy: Literal["needs_review", "stop"] = Field(
        default="needs_review",
        description="When people's answers on the audit sample put the machine labels' accuracy "
        "(one-sided 95% lower bound) under autolabel.target_accuracy: 'needs_review' raises the "
        "threshold and sends the machine labels under it to people in a second review round of "
        "the same run (those still unanswered stay out of the accepted view); 'stop' "
        "publishes nothing.",
    )

    def selected_checks(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(name, action, params)`` of every check to run, defaults included."""
        if self.checks is None:
            from validators.screening import DEFAULT_CHECKS

            return [(name, action, {}) for name, action in DEFAULT_CHECKS.items()]
        return [(c.name, c.action, dict(c.params)) for c in self.checks]


class LabelingJobSpec(_Strict):
    """A labeling job: what data, which labels, how strict, where the result goes."""

    name: str = Field(pattern=_NAME, description="Job name (lowercase, digits, - _ .).")
    dataset: DatasetSpec
    label_schema: LabelSchema = Field(alias="schema")
    autolabel: AutolabelSpec = Field(default_factory=AutolabelSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    review: ReviewSpec = Field(default_factory=ReviewSpec)
    output: OutputSpec
    rights: RightsSpec = Field(description="Rights of the data; required to publish.")
    sources: list[RightsSpec] = Field(
        default_factory=list,
        description="Rights of further sources the data was built from; every one must allow training.",
    )
    validation: ValidationSpec = Field(default_factory=ValidationSpec)

    @property
    def all_rights(self) -> list[RightsSpec]:
        """The rights of every source: ``rights`` first, then ``sources``."""
        return [self.rights, *self.sources]

    @property
    def run_name(self) -> str:
        """The name of the job's flow runs in the Prefect UI: the job and the label set it feeds
        (``digits-demo -> digits``), so that a team lead finds a job's runs in the list."""
        return f"{self.name} -> {self.output.label_set}"

    def spec_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON form: the same job always hashes alike."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def format_validation_error(error: ValidationError, *, where: str) -> str:
    """One line per problem, each with its field path, e.g. ``dataset.id_column: Field required``."""
    lines = []
    for problem in error.errors():
        loc = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        msg = problem["msg"]
        if problem["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return f"invalid job spec {where}:\n" + "\n".join(lines)


def parse_spec(data: object, *, where: str = "(inline)") -> LabelingJobSpec:
    """Validate a mapping into a spec; raise :class:`SpecError` naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"invalid job spec {where}: expected a mapping, got {type(data).__name__}")
    try:
        return LabelingJobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, where=where)) from None


def load_spec(path: str | Path) -> LabelingJobSpec:
    """Read a YAML or JSON spec file.

    A relative ``dataset.path`` is resolved against the spec file's folder (as docker-compose
    does), so a spec and its data can move together.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read job spec {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"job spec {path} is not valid YAML/JSON: {exc}") from None
    spec = parse_spec(data, where=str(path))

    def near_spec(value: str) -> str:
        if "://" in value or Path(value).is_absolute():
            return value
        return str((path.parent / value).resolve())

    data = spec.model_dump(by_alias=True)
    data["dataset"]["path"] = near_spec(spec.dataset.path)
    if spec.review.gold_path:
        data["review"]["gold_path"] = near_spec(spec.review.gold_path)
    if spec.review.simulate:
        data["review"]["simulate"]["truth_path"] = near_spec(spec.review.simulate.truth_path)
    return LabelingJobSpec.model_validate(data)


def slug(text: str) -> str:
    """A file-system-safe name derived from ``text``."""
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-") or "job"
