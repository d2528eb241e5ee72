"""The ``labelgate`` command: run jobs and read label sets.

labelgate run SPEC
labelgate labelsets list | show NAME[@V] | export NAME[@V] ... | diff NAME@A NAME@B | lineage NAME[@V]
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelgate import temporary_server
from labelgate.errors import LabelgateError

app = typer.Typer(
    help="labelgate: autolabel, audit, quarantine and publish versioned label sets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
labelsets = typer.Typer(help="Read versioned label sets.", no_args_is_help=True)
app.add_typer(labelsets, name="labelsets")
console = Console(soft_wrap=True)  # paths and URLs stay whole (copy-pasteable) off a terminal
errors = Console(stderr=True)


def _fail(exc: Exception | str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="Job spec, YAML or JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's log lines."),
) -> None:
    """Run a labeling job and publish a new label-set version."""
    from labelgate.spec import load_spec

    _quiet_prefect(verbose)
    temporary_server.start_if_needed()  # boots on the other core while the pipeline is imported
    try:
        spec = load_spec(spec_path)
    except LabelgateError as exc:
        raise _fail(exc, 2) from None
    _summarise(_run_with_progress(spec, verbose=verbose))


@app.command()
def demo(
    folder: Path = typer.Option(Path("var/demo"), help="Where to write the demo data and spec."),
    review: str = typer.Option(
        "none",
        help="none | bots (three bot labelers in Label Studio) | people (you label in Label "
        "Studio, then run the same command again)",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's log lines."),
) -> None:
    """Run the bundled demo: scikit-learn's digits with 15% of labels flipped on purpose (3% when
    you label yourself, so that the job is one person's work)."""
    from labelgate.demo import scorecard, write_demo
    from labelgate.spec import load_spec
    from labelgate.store import LabelStore

    _quiet_prefect(verbose)
    temporary_server.start_if_needed()  # boots on the other core while the pipeline is imported
    if review not in ("none", "bots", "people"):
        raise _fail(LabelgateError(f"--review must be none, bots or people; got {review!r}"), 2)
    spec_path = write_demo(folder, review=review)
    console.print(f"demo data and spec written to {folder}/ (spec: {spec_path})")
    published = _run_with_progress(load_spec(spec_path), verbose=verbose)
    _summarise(published)
    rows = LabelStore().read(published.label_set, published.version)
    score = scorecard(rows, folder / "digits-truth.csv")
    table = Table(title="demo scorecard (against the clean digits labels)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in score.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Start the HTTP API: jobs, label sets, the Label Studio webhook receiver (docs at /docs)."""
    import uvicorn

    uvicorn.run("labelgate.api:create_app", factory=True, host=host, port=port)


def _quiet_prefect(verbose: bool) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


class _ReportedByTheCli(logging.Filter):
    """Prefect logs a traceback for any exception that ends a flow run. A ``LabelgateError`` (bad
    input, people still labeling, a gate) is reported by the CLI itself, as one ``error:`` line
    that names what is wrong and where; on the console, Prefect's copy is dropped (the Prefect UI
    keeps it). Anything else still shows its traceback. labelgate's own INFO lines are dropped
    too: the progress display shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, LabelgateError):
            return False
        # labelgate's own INFO lines go to the Prefect run's log (labelgate.run_logs); on the
        # console the progress display shows them.
        from labelgate.run_logs import LOGGERS

        return record.levelno >= logging.WARNING or record.name.split(".")[0] not in LOGGERS


@contextlib.contextmanager
def _stage_display(job: str):
    """A listener for :mod:`labelgate.progress`: a live bar on a terminal; one line per event
    otherwise (``make demo > log``, CI), where a live bar would show nothing until the end."""
    from labelgate import progress

    if not console.is_terminal:
        started = time.monotonic()

        def line(stage: str, state: str) -> None:
            minutes, seconds = divmod(int(time.monotonic() - started), 60)
            text = f"{job}: {stage} ({state}) {minutes}:{seconds:02d}"
            console.print(text, highlight=False, soft_wrap=True)

        yield line
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        bar_id = bar.add_task(f"{job}: ingest", total=len(progress.STAGES))

        def advance(stage: str, state: str) -> None:
            if stage not in progress.STAGES:  # a task inside a stage, or a long step's progress
                bar.update(bar_id, description=f"{job}: {stage} ({state})")
                return
            done = progress.STAGES.index(stage) + 1
            following = progress.STAGES[done] if done < len(progress.STAGES) else "done"
            bar.update(bar_id, completed=done, description=f"{job}: {following}")

        yield advance


def _run_with_progress(spec, *, verbose: bool = False):
    """Run the labeling flow with a progress bar; a LabelgateError ends the command cleanly
    (``verbose``: Prefect's traceback of it shows as well)."""
    from flows.labeling_job import labeling_job
    from labelgate import progress

    for handler in [] if verbose else logging.getLogger().handlers:  # Prefect's console handler
        if not any(isinstance(f, _ReportedByTheCli) for f in handler.filters):
            handler.addFilter(_ReportedByTheCli())

    before = _published_version(spec.output.label_set)
    try:
        with _stage_display(spec.name) as show:
            unsubscribe = progress.subscribe(show)
            try:
                with temporary_server.in_use():
                    return labeling_job(spec)
            finally:
                unsubscribe()
    except LabelgateError as exc:  # reported once the progress bar has stopped
        raise _fail(_with_what_was_published(exc, spec.output.label_set, before)) from None


def _published_version(label_set: str) -> int | Exception | None:
    """The label set's newest version (None: none yet), or the error that kept it unknown."""
    from labelgate.store import LabelStore

    try:
        return LabelStore().latest_version(label_set)
    except Exception as exc:  # an unreachable store is the run's to report, not this check's
        return exc


def _with_what_was_published(exc: Exception, label_set: str, before) -> Exception | str:
    """The run's error, and whether it left the label set as it was: a failed run publishes
    nothing half-done, and the person reading the error should not have to go and look."""
    if "Nothing was published" in str(exc) or isinstance(before, Exception):
        return exc
    after = _published_version(label_set)
    if after != before:
        return exc
    kept = "still has no version" if before is None else f"stays at version {before}"
    return f"{exc}\nNothing was published: label set {label_set!r} {kept}."


def _summarise(published) -> None:
    from labelgate.settings import get_settings
    from labelgate.store import LabelStore

    store = LabelStore()
    rows = store.read(published.label_set, published.version)
    counts = rows["status"].value_counts()
    table = Table(
        title=f"{published.label_set} v{published.version}"
        + ("" if published.created else " (unchanged: same job on the same data)")
    )
    table.add_column("status")
    table.add_column("items", justify="right")
    for status in ("accepted", "quarantined", "needs_review"):
        table.add_row(status, str(int(counts.get(status, 0))))
    console.print(table)
    folder = get_settings().runs_dir / published.label_set / f"v{published.version}"
    console.print(f"label set:  {store.uri(published.label_set)} (version {published.version})")
    console.print(f"report:     {folder / 'report.md'} and {folder / 'report.png'}")
    from prefect.settings import get_current_settings

    run_id = store.lineage(published.label_set, published.version).get("flow_run_id")
    api = str(get_current_settings().api.url or "")  # env, profile or prefect.toml
    if api and run_id:
        console.print(f"flow run:   {api.removesuffix('/api')}/runs/flow-run/{run_id}")
    elif run_id:
        console.print(
            f"flow run:   {run_id} (temporary Prefect server, gone with this process; against a "
            "running server, e.g. `make stack` and PREFECT_API_URL, the run stays browsable)"
        )


def _store():
    from labelgate.store import LabelStore

    return LabelStore()


@labelsets.command("list")
def list_sets() -> None:
    """Every label set with its latest version and counts."""
    store = _store()
    table = Table()
    for col in ("label set", "version", "items", "accepted", "quarantined", "needs_review", "job"):
        table.add_column(col)
    for name in store.names():
        latest = store.versions(name)[0]
        counts = latest["lineage"].get("counts", {})
        table.add_row(
            name,
            str(latest["version"]),
            str(latest["lineage"].get("items", "")),
            *(str(counts.get(s, 0)) for s in ("accepted", "quarantined", "needs_review")),
            str(latest["lineage"].get("job", "")),
        )
    console.print(table)


@labelsets.command()
def show(
    ref: str = typer.Argument(..., metavar="NAME[@VERSION]"),
    limit: int = typer.Option(10, help="How many rows to print."),
) -> None:
    """Summary and first rows of one version (latest by default)."""
    from labelgate.store import parse_ref

    store = _store()
    try:
        name, version = parse_ref(ref)
        rows = store.read(name, version)
        lineage = store.lineage(name, version)
    except LabelgateError as exc:
        raise _fail(exc) from None
    shown = version if version is not None else store.latest_version(name)
    console.print(f"[bold]{name}[/] version {shown}")
    console.print(
        f"job {lineage.get('job')} · data {lineage.get('data_source')} · "
        f"model {lineage.get('model_version')} · licence {lineage.get('rights', {}).get('license')}"
    )
    console.print(rows["status"].value_counts().to_string())
    console.print(rows.head(limit).to_string(index=False))


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


@labelsets.command()
def export(
    ref: str = typer.Argument(..., metavar="NAME[@VERSION]"),
    fmt: ExportFormat = typer.Option(ExportFormat.csv, "--format", help="csv, parquet or jsonl"),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    accepted_only: bool = typer.Option(
        False, "--accepted-only", help="Leave out quarantined and unreviewed items."
    ),
) -> None:
    """Write one version to a file."""
    from labelgate.store import parse_ref

    try:
        name, version = parse_ref(ref)
        rows = _store().read(name, version, accepted_only=accepted_only)
    except LabelgateError as exc:
        raise _fail(exc) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt is ExportFormat.csv:
        rows.to_csv(output, index=False)
    elif fmt is ExportFormat.parquet:
        rows.to_parquet(output, index=False)
    else:
        rows.to_json(output, orient="records", lines=True)
    console.print(f"wrote {len(rows)} rows to {output}")


@labelsets.command()
def diff(
    a: str = typer.Argument(..., metavar="NAME@A"),
    b: str = typer.Argument(..., metavar="NAME@B"),
    limit: int = typer.Option(20, help="How many changed items to print."),
) -> None:
    """Items whose label or status changed between two versions."""
    from labelgate.store import parse_ref

    try:
        name_a, va = parse_ref(a)
        name_b, vb = parse_ref(b)
        if name_a != name_b or va is None or vb is None:
            raise LabelgateError("diff takes two versions of one set, e.g. digits@0 digits@1")
        changes = _store().diff(name_a, va, vb)
    except LabelgateError as exc:
        raise _fail(exc) from None
    console.print(f"{len(changes)} item(s) differ between {a} and {b}")
    if len(changes):
        console.print(changes["change"].value_counts().to_string())
        console.print(changes.head(limit).to_string(index=False))


def _lineage_block(name: str, version: int, data: dict) -> list[str]:
    """The lines of one version in ``labelsets lineage``."""
    lines = [
        f"[bold]{name}@{version}[/]  published {data.get('published_at', '?')} · job {data.get('job')} "
        f"· spec {data.get('spec_hash')} · flow run {data.get('flow_run_id') or '—'}",
        f"  data:        {data.get('data_source')} (fingerprint {data.get('data_fingerprint')}, "
        f"{data.get('items')} items)",
    ]
    rights = data.get("rights_of_sources") or ([data["rights"]] if data.get("rights") else [])
    for n, r in enumerate(rights):
        lines.append(
            f"  {'rights:' if n == 0 else '':<12} {r.get('source')} · {r.get('license')} · "
            f"uses {', '.join(r.get('allowed_uses') or [])} · expires {r.get('expires') or 'never'}"
        )
    models = data.get("models") or {}
    lines.append(
        f"  models:      {data.get('model_version')}"
        + (f" ({', '.join(models)})" if models else "")
        + (f" at {data['model_uri']}" if data.get("model_uri") else "")
    )
    thresholds = data.get("thresholds") or {}
    if thresholds:
        shown = ", ".join(
            f"{c} {t.get('threshold', float('nan')):.3f} ({t.get('basis', 'class')}"
            + (f": {t['probe_correct']} of {t['probe_checked']} probed right" if "probe_checked" in t else "")
            + ")"
            for c, t in thresholds.items()
        )
        lines.append(f"  thresholds:  target {data.get('target_accuracy')}: {shown}")
        evidence = data.get("threshold_evidence") or {}
        left = evidence.get("machine_made_left_out") or 0
        if left or evidence.get("gold_answers") or evidence.get("learned_labels"):
            text = f"{evidence['given_labels'] - left} of {evidence['given_labels']} given labels"
            if left:
                text += f" ({left} machine-made, per column {evidence['label_source_column']!r}, left out)"
            if evidence.get("learned_labels"):
                text += f", {evidence['learned_labels']} labels people gave in learning rounds"
            if evidence.get("gold_answers"):
                text += f", and {evidence['gold_answers']} gold answers"
            lines.append(f"  evidence:    {text}")
    verdict = data.get("machine_labels")
    if verdict:
        lines.append(f"  machine labels: {verdict.get('status')} — {verdict.get('why')}")
    for check in data.get("screening") or []:
        if check.get("found"):
            lines.append(f"  screening:   {check['check']}: {check['found']} found, {check['action']}")
    drift = data.get("drift") or {}
    if drift:
        said = "; ".join(drift.get("reasons") or []) or drift.get("skipped") or "none beyond the bounds"
        lines.append(f"  drift:       {said}")
    review = data.get("review") or {}
    learning = review.get("learning") or {}
    if learning.get("rounds"):
        lines.append(
            f"  learning:    {learning['rounds']} round(s), {learning.get('labeled')} items labeled by "
            "people before the rest was routed"
        )
    for a in review.get("annotators") or []:
        lines.append(
            f"  annotator:   {a.get('annotator')} ({a.get('answers')} answers, agreement "
            f"{a.get('agreement_with_consensus')}, gold accuracy {a.get('gold_accuracy')})"
        )
    parent = data.get("parent_version")
    lines.append(f"  parent:      {'none' if parent is None else f'{name}@{parent}'}")
    return lines


@labelsets.command()
def lineage(
    ref: str = typer.Argument(..., metavar="NAME[@VERSION]"),
    as_json: bool = typer.Option(False, "--json", help="Print this version's stored lineage as JSON."),
    depth: int = typer.Option(20, help="How many versions of the chain to follow (parents)."),
) -> None:
    """Where a version came from: sources, rights, models, thresholds, gates, annotators, jobs, and
    the same for its parent versions, newest first."""
    from labelgate.store import parse_ref

    store = _store()
    try:
        name, version = parse_ref(ref)
        data = store.lineage(name, version)
        if as_json:
            console.print_json(json.dumps(data, default=str))
            return
        current = version if version is not None else store.latest_version(name)
        chain = [(current, data)]
        while len(chain) < depth and chain[-1][1].get("parent_version") is not None:
            parent = chain[-1][1]["parent_version"]
            chain.append((parent, store.lineage(name, parent)))
    except LabelgateError as exc:
        raise _fail(exc) from None
    for v, entry in chain:
        for line in _lineage_block(name, v, entry):
            console.print(line, highlight=False, soft_wrap=True)


def main() -> None:
    """The ``labelgate`` console script: the commands above, then a quick exit.

    A job leaves hundreds of thousands of Python objects behind, and the interpreter's teardown
    walks all of them in a last garbage collection: about 1 s after a 100k-item run. Freezing them
    first skips that walk and nothing else (threads, atexit handlers and flushing run as usual).
    """
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
