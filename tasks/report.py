"""report: what a person reads to judge a label set.

Counts by status, source and class; the confusion between given and predicted labels; the top
suspects with their reasons; the thresholds and what they rest on; a PNG with the same pictures.
``build_report`` is pure (returns markdown); ``tasks/report_figure.py`` draws the PNG.
"""

from __future__ import annotations

import base64
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from labelgate.progress import stage_finished
from labelgate.settings import get_settings
from labelgate.spec import LabelingJobSpec
from labelgate.store import STATUSES
from tasks.report_figure import class_status_counts, confusion, png_bytes


def _probe_lines(gate: dict) -> list[str]:
    """What the probes did (``tasks/probe.py``): basis ``probe`` in the table above."""
    out = []
    for cls, g in gate.items():
        if g.get("basis") != "probe" or "probe_checked" not in g:
            continue
        bar = f"certified p >= {g['threshold']:.3f}" if np.isfinite(g["threshold"]) else "certified nothing"
        out.append(
            f"- probe of {cls!r}: no evidence certified a threshold, so its {g['region']} most confident "
            f"machine labels were accepted provisionally and people checked {g['probe_checked']} of them "
            f"({g['probe_correct']} right): {bar}; {g.get('probe_demoted', 0)} provisional label(s) "
            "went to people."
        )
    return ["", *out] if out else []


def _evidence_text(evidence: dict | None) -> str:
    """The given labels (and gold answers) the thresholds were tuned on, in words."""
    if not evidence or not evidence.get("machine_made_left_out"):
        text = "every given label"
    else:
        left = evidence["machine_made_left_out"]
        text = (
            f"{evidence['given_labels'] - left} of the {evidence['given_labels']} given labels: the "
            f"{left} that column `{evidence['label_source_column']}` says a model made were left out "
            "(a model cannot vouch for machine labels)"
        )
    if evidence and evidence.get("learned_labels"):
        text += f", the {evidence['learned_labels']} labels people gave in learning rounds"
    if evidence and evidence.get("gold_answers"):
        text += f", and the {evidence['gold_answers']} gold answers (a known answer replaces a given label)"
    return text


def counts(rows: pd.DataFrame, classes: list[str] | None = None) -> dict[str, Any]:
    """Counts by status, by source and by class x status (classes in ``classes``' order)."""
    return {
        "total": len(rows),
        "status": {s: int((rows["status"] == s).sum()) for s in STATUSES},
        "source": rows["source"].value_counts().to_dict(),
        "by_class": class_status_counts(rows, classes),
    }


def _md_table(frame: pd.DataFrame, *, index_name: str = "") -> str:
    header = f"| {index_name} | " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|---" * (len(frame.columns) + 1) + "|"
    body = [
        f"| {i} | " + " | ".join(str(v) for v in row) + " |"
        for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    return "\n".join([header, rule, *body])


def build_report(
    rows: pd.DataFrame,
    *,
    classes: list[str],
    lineage: dict[str, Any],
    version: int,
    created: bool,
    plot_name: str | None = "report.png",
    top: int = 15,
) -> str:
    """Markdown report of one published version."""
    c = counts(rows, classes)
    name = lineage.get("label_set", "?")
    lines = [f"# Label set `{name}` version {version}", ""]
    if not created:
        lines += ["This run changed nothing: the latest version already holds these labels.", ""]
    lines += [
        f"Job `{lineage.get('job')}` · spec `{lineage.get('spec_hash')}` · data "
        f"`{lineage.get('data_fingerprint')}` · model `{lineage.get('model_version')}` · "
        f"licence {lineage.get('rights', {}).get('license')}",
        "",
        "## Counts",
        "",
        "| status | items | share |",
        "|---|---|---|",
    ]
    for status, n in c["status"].items():
        lines.append(f"| {status} | {n} | {n / max(c['total'], 1):.1%} |")
    lines += ["", "| source | items |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in c["source"].items()]
    lines += ["", "Per class (by published label):", "", _md_table(c["by_class"], index_name="class")]
    lines += [
        "",
        "## Given vs predicted (out-of-sample)",
        "",
        _md_table(confusion(rows, classes), index_name="given \\ predicted"),
    ]
    gate = lineage.get("thresholds", {})
    if gate:
        lines += [
            "",
            "## Machine-label gate",
            "",
            f"Target accuracy {lineage.get('target_accuracy')}. Estimated from out-of-sample "
            f"predictions scored against {_evidence_text(lineage.get('threshold_evidence'))}, noise "
            "included (one-sided 95% lower bound, exact; noisy given labels make this conservative); "
            + (
                "no machine label was published without a person's answer."
                if not c["source"].get("model")
                else "**no human has checked these machine labels: their accuracy is unverified.**"
                if lineage.get("machine_accuracy_verified") is False
                else "people checked an audit sample of them (see Human review)."
                if not _probe_lines(gate)
                else "people checked a probe of each probed class (below) and an audit sample of the "
                "other classes' (see Human review)."
            ),
            "",
            "| class | threshold | basis | support | est. accuracy | lower bound |",
            "|---|---|---|---|---|---|",
        ]
        for cls, g in gate.items():
            t = "none reaches target" if not np.isfinite(g["threshold"]) else f"{g['threshold']:.3f}"
            lines.append(
                f"| {cls} | {t} | {g.get('basis', 'class')} | {g['support']} | "
                f"{_share(g['accuracy'], 3)} | {_share(g['accuracy_lower'], 3)} |"
            )
        lines += _probe_lines(gate)
    lines += validation_sections(lineage)
    suspects = rows[rows["status"] == "quarantined"].sort_values("quality").head(top)
    lines += ["", f"## Top {len(suspects)} suspects (lowest label quality first)", ""]
    if suspects.empty:
        lines.append("No label was quarantined.")
    else:
        lines += ["| item | given | quality | reason |", "|---|---|---|---|"]
        lines += [
            f"| {r.item_id} | {r.given_label} | {r.quality:.3f} | {r.reason} |" for r in suspects.itertuples()
        ]
    review = lineage.get("review")
    if review:
        machine = review["machine_accuracy"]
        resolution = review["quarantine_resolution"]
        lines += ["", "## Human review", "", "| routed because | items |", "|---|---|"]
        lines += [f"| {why} | {n} |" for why, n in review["routed"].items()]
        learning = review.get("learning")
        if learning and learning.get("rounds"):
            lines += [
                "",
                f"Learning rounds: {learning['rounds']}. People labeled {learning['labeled']} items the "
                "model was unsure of before the rest was routed; the model learned from them and the "
                "thresholds were tuned again (`tasks/learning.py`).",
            ]
        if machine["checked"]:
            lines += [
                "",
                f"Machine labels checked by people (audit sample): {machine['correct']} of "
                f"{machine['checked']} equal to people's most frequent answer, "
                f"estimate {machine['estimate']:.3f}, "
                f"95% lower bound {machine['lower_95']:.3f}.",
            ]
        if resolution["confirmed"] + resolution["overturned"]:
            lines += [
                f"Quarantine flags re-reviewed: {resolution['confirmed']} confirmed, "
                f"{resolution['overturned']} overturned (flag precision "
                f"{resolution['flag_precision']:.2f})."
            ]
        if review.get("labels_no_reviewer_gave"):
            lines += [
                f"{review['labels_no_reviewer_gave']} reviewed item(s) carry a label no reviewer gave: "
                "CROWDLAB weighed the model's probabilities over every answer (their reasons say so)."
            ]
        if review["annotators"]:
            lines += [
                "",
                "| annotator | answers | agreement with consensus | gold answers | gold accuracy |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {a['annotator']} | {a['answers']} | {a['agreement_with_consensus']:.2f} | "
                f"{a['gold_answers']} | {_share(a['gold_accuracy'])} |"
                for a in review["annotators"]
            ]
    audit = lineage.get("audit", {})
    if audit:
        lines += ["", "## Audit settings", "", "```", *(f"{k}: {v}" for k, v in audit.items()), "```"]
    if plot_name:
        lines += ["", f"![report]({plot_name})"]
    return "\n".join(lines) + "\n"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def validation_sections(lineage: dict[str, Any]) -> list[str]:
    """Markdown lines: one section per gate — machine labels, screening (a row per check: what it
    found, what it did, why), drift, data rights — from what the lineage recorded."""
    lines: list[str] = []
    verdict = lineage.get("machine_labels")
    if verdict:
        head = {
            "verified": "verified by people",
            "below_target": "**below the target: not published as accepted**",
            "unverified": "**unverified**",
        }[verdict["status"]]
        why = verdict["why"][:1].upper() + verdict["why"][1:]
        lines += ["", "## Autolabel quality gate", "", f"Machine labels: {head}. {why}."]
        if verdict["status"] == "unverified" and verdict.get("machine_accepted"):
            lines.append(
                f"{verdict['machine_accepted']} machine label(s) are published as accepted on the "
                "model's word alone. To verify them, review a sample: `review.mode: labelstudio` with "
                f"`review.audit_share` giving at least {verdict['needed']} checked labels."
            )
        if verdict["status"] == "below_target":
            lines.append(f"Action (`validation.low_machine_accuracy`): {verdict.get('action')}.")
    screening = lineage.get("screening") or []
    if screening:
        lines += [
            "",
            "## Screening",
            "",
            "| check | action | found | did | why (first findings) |",
            "|---|---|---|---|---|",
        ]
        for check in screening:
            why = "; ".join(f"{e['item_id']}: {e['reason']}" for e in check["examples"][:3]) or "—"
            lines.append(
                f"| {check['check']} | {check['action']} | {check['found']} | {check['did']} | {_cell(why)} |"
            )
    drift = lineage.get("drift")
    if drift:
        lines += ["", "## Drift against the previous version", ""]
        if drift.get("skipped"):
            lines.append(f"Not compared: {drift['skipped']}.")
        else:
            lines += [
                f"Compared with version {drift['compared_with']}.",
                "",
                "| what | test | figure | bound | drifted |",
                "|---|---|---|---|---|",
                f"| predicted class distribution | chi-square | p = {drift['class']['p_value']:.3g} | "
                f"p < {drift['class']['bound']} | {'**yes**' if drift['class']['drifted'] else 'no'} |",
                f"| model confidence | PSI (previous deciles) | {drift['confidence']['psi']:.3f} | "
                f"> {drift['confidence']['bound']} | "
                f"{'**yes**' if drift['confidence']['drifted'] else 'no'} |",
            ]
            inputs = drift["inputs"]
            if inputs.get("skipped"):
                lines.append(f"| inputs | PSI | — | — | not compared: {inputs['skipped']} |")
            elif inputs.get("worst"):
                worst = inputs["worst"]
                lines.append(
                    f"| input statistic (worst: {worst}) | PSI (previous deciles) | "
                    f"{inputs['psi'][worst]:.3f} | > {inputs['bound']} | "
                    f"{'**yes**' if inputs['drifted'] else 'no'} |"
                )
            if drift["drifted"]:
                lines += [
                    "",
                    f"**Drift found: {'; '.join(drift['reasons'])}.** The audit sample of machine labels "
                    f"was widened to {drift['audit_share']:.0%} and the thresholds were re-tuned on this "
                    "run's evidence per class only (no pooled fallback).",
                ]
    sources = lineage.get("rights_of_sources") or ([lineage["rights"]] if lineage.get("rights") else [])
    if sources:
        check = lineage.get("rights_check") or {}
        lines += [
            "",
            "## Data rights",
            "",
            "| source | licence | allowed uses | expires |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(r['source'])} | {r['license']} | {', '.join(r.get('allowed_uses') or [])} | "
            f"{r.get('expires') or '—'} |"
            for r in sources
        ]
        if check:
            lines += [
                "",
                f"Every source allows {check['use']} on {check['checked_on']}: checked before publishing.",
            ]
    return lines


# -- Prefect task ---------------------------------------------------------------------------


@task(name="report", cache_policy=NO_CACHE, on_completion=[stage_finished])
def report(
    spec: LabelingJobSpec,
    rows: pd.DataFrame,
    lineage: dict[str, Any],
    published,
    figure: dict[str, Any],
    drawing: Future,
) -> Path:
    """Write report.md and report.png next to the run, and the same markdown as an artifact.

    ``figure``: what the picture shows (``report_figure.figure_data``); ``drawing``: the PNG
    being drawn from it in the drawing process (``report_figure.draw_in_background``)."""
    folder = get_settings().runs_dir / spec.output.label_set / f"v{published.version}"
    folder.mkdir(parents=True, exist_ok=True)
    png = png_bytes(drawing, figure)
    (folder / "report.png").write_bytes(png)
    markdown = build_report(
        rows,
        classes=spec.label_schema.classes,
        lineage=lineage,
        version=published.version,
        created=published.created,
    )
    path = folder / "report.md"
    path.write_text(markdown)
    create_markdown_artifact(
        key=f"report-{spec.output.label_set}".replace("_", "-").replace(".", "-"),
        markdown=artifact_markdown(markdown, png, folder / "report.png"),
        description=f"Label set {spec.output.label_set} v{published.version}",
    )
    return path


def artifact_markdown(markdown: str, png: bytes, png_path: Path) -> str:
    """The report as the run's artifact in the Prefect UI: the plot travels inside it (a PNG data
    URI, which the UI shows like any image; about 200 kB), since the worker's folder that holds
    report.png is seldom where the reader is; its path is given too."""
    picture = f"![report](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
    return markdown.replace("![report](report.png)", f"{picture}\n\nPlot file: `{png_path}`")


def _share(value: object, places: int = 2) -> str:
    """A share with ``places`` decimals; "–" where there is none (an annotator who met no gold
    item, a class whose threshold certified nothing)."""
    return "–" if value is None or value != value else f"{float(value):.{places}f}"
