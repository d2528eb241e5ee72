"""report.png: counts per class and status, the confusion matrix, the label-quality histogram and
the threshold curves, in one picture.

``figure_data`` takes what the picture needs from the rows (small arrays); ``render_png`` draws
it. Drawing takes about a second (plus half a second to import matplotlib), on a pipeline that
otherwise keeps one core busy, so the flow draws in a separate process on the other core, started
when the flow starts (``warm_up``) and given the data before the publish (``draw_in_background``).
If that process dies, the report draws here instead.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pandas as pd

from labelgate.store import STATUSES

QUALITY_GROUPS = {
    "accepted as given": "#4caf50",
    "quarantined": "#e53935",
    "re-reviewed by people": "#fb8c00",
}


def class_status_counts(rows: pd.DataFrame, classes: list[str] | None = None) -> pd.DataFrame:
    """Items per class (rows, in ``classes``' order when given) and status (columns)."""
    counted = (
        rows.groupby(["label", "status"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
    )
    if classes is None:
        return counted
    order = [c for c in classes if c in counted.index] + [c for c in counted.index if c not in classes]
    return counted.reindex(order)


def confusion(rows: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Given (rows) x predicted (columns) counts over items that came with a label."""
    labeled = rows[rows["given_label"].notna()]
    table = pd.crosstab(labeled["given_label"], labeled["predicted_label"])
    return table.reindex(index=classes, columns=classes, fill_value=0)


def chosen_point(curve: dict[str, np.ndarray], threshold: float | None) -> tuple[float, float] | None:
    """Where ``threshold`` falls on ``curve`` (:func:`tasks.gate.threshold_curve`): the coverage
    and accuracy of the predictions at or above it. None for a class that accepts nothing."""
    if threshold is None or not np.isfinite(threshold):
        return None
    above = np.flatnonzero(np.asarray(curve["threshold"]) >= threshold)
    if not len(above):
        return None
    i = above[-1]
    return float(curve["coverage"][i]), float(curve["accuracy"][i])


def figure_data(
    rows: pd.DataFrame,
    *,
    classes: list[str],
    curves: dict[str, dict[str, np.ndarray]],
    target: float | None = None,
    thresholds: dict[str, dict[str, Any]] | None = None,
    annotators: list[dict[str, Any]] | None = None,
) -> dict:
    """Everything the picture shows, as small arrays (cheap to hand to another process).

    ``target``: the accuracy the machine labels must reach (a line on the threshold curves);
    ``thresholds``: the gate's per-class thresholds (a dot where each falls on its curve);
    ``annotators``: the review's annotator scores (``tasks.consensus.annotator_scores`` rows), a
    panel of their own when people answered."""
    by_class = class_status_counts(rows, classes)  # the schema's order, as in the confusion matrix
    cm = confusion(rows, classes).to_numpy()
    labeled = rows[rows["given_label"].notna()]
    masks = {
        "accepted as given": (labeled["status"] == "accepted") & (labeled["source"] == "given"),
        "quarantined": labeled["status"] == "quarantined",
        "re-reviewed by people": labeled["source"].isin(["human", "gold"]),
    }
    quality = {
        name: labeled.loc[mask, "quality"].dropna().to_numpy(dtype=float) for name, mask in masks.items()
    }
    return {
        "classes": [str(c) for c in classes],
        "by_class": {
            "labels": [str(i) for i in by_class.index],
            "counts": {s: by_class[s].to_numpy() for s in STATUSES},
        },
        "confusion": cm,
        "quality": quality,
        "curves": {
            str(k): {
                "coverage": v["coverage"],
                "accuracy": v["accuracy"],
                "chosen": chosen_point(v, (thresholds or {}).get(k, {}).get("threshold")),
            }
            for k, v in curves.items()
        },
        "target": target,
        "annotators": [
            {
                "name": str(a["annotator"]),
                "answers": int(a["answers"]),
                "agreement": float(a["agreement_with_consensus"]),
                "gold_answers": int(a["gold_answers"]),
                "gold_accuracy": float(a["gold_accuracy"]) if a["gold_answers"] else float("nan"),
            }
            for a in sorted(annotators or [], key=lambda a: a["agreement_with_consensus"])
        ],
    }


def render_png(data: dict[str, Any]) -> bytes:
    """Draw :func:`figure_data`'s output: a 2 x 2 PNG, as bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = data["classes"]
    people = data.get("annotators") or []
    if people:  # a third row, both columns wide: the people who answered
        fig = plt.figure(figsize=(13, 10 + 1.5 + 0.3 * len(people)))
        grid = fig.add_gridspec(3, 2, height_ratios=[5, 5, 1.2 + 0.3 * len(people)])
        axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(2)] for r in range(2)])
        _draw_annotators(fig.add_subplot(grid[2, :]), people)
    else:
        fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    ax = axes[0, 0]
    labels, bottom = data["by_class"]["labels"], np.zeros(len(data["by_class"]["labels"]))
    for status, colour in zip(STATUSES, ("#4caf50", "#e53935", "#fbc02d"), strict=True):
        values = data["by_class"]["counts"][status]
        ax.bar(range(len(labels)), values, bottom=bottom, color=colour, label=status, width=0.5)
        bottom = bottom + values
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_title("items per class and status")
    ax.legend()

    cm = data["confusion"]
    ax = axes[0, 1]
    ax.imshow(np.log1p(cm), cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted (out-of-sample)")
    ax.set_ylabel("given")
    ax.set_title("given vs predicted")
    if len(classes) <= 12:
        for (i, j), v in np.ndenumerate(cm):
            colour = "white" if v > cm.max() / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color=colour)

    ax = axes[1, 0]
    for name, colour in QUALITY_GROUPS.items():
        q = data["quality"][name]
        if len(q):
            ax.hist(q, bins=40, range=(0, 1), alpha=0.7, color=colour, label=f"{name} ({len(q)})")
    ax.set_title("label quality of items that came with a label")
    ax.set_xlabel("cleanlab label quality (consensus quality after review)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()

    ax = axes[1, 1]
    for cls, curve in data["curves"].items():
        if len(curve["coverage"]):
            (line,) = ax.plot(curve["coverage"], curve["accuracy"], label=cls, lw=1)
            if curve.get("chosen"):
                ax.plot(*curve["chosen"], "o", color=line.get_color(), ms=6)
    if data.get("target") is not None:
        ax.axhline(data["target"], color="grey", ls="--", lw=1)
        ax.annotate(
            f"target {data['target']:g}",
            (1.0, data["target"]),
            xytext=(0, -10),
            ha="right",
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
    ax.set_xlabel("coverage (share of the class's predictions at or above the threshold)")
    ax.set_ylabel("accuracy against the evidence labels (out of sample)")
    ax.set_title("threshold curves per class (dot: the threshold chosen)")
    if data["curves"]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _draw_annotators(ax, people: list[dict[str, Any]]) -> None:
    """Agreement with consensus and accuracy on gold items, a pair of bars per person, the least
    agreeing at the bottom."""
    y = np.arange(len(people))
    agreement = [p["agreement"] for p in people]
    gold = np.nan_to_num([p["gold_accuracy"] for p in people], nan=0.0)
    ax.barh(y + 0.2, agreement, height=0.4, color="#1e88e5")
    ax.barh(y - 0.2, gold, height=0.4, color="#fb8c00")
    for i, p in enumerate(people):
        ax.text(p["agreement"] + 0.005, i + 0.2, f"{p['agreement']:.2f}", va="center", fontsize=7)
        note = "no gold item" if not p["gold_answers"] else f"{p['gold_accuracy']:.2f} of {p['gold_answers']}"
        ax.text(gold[i] + 0.005, i - 0.2, note, va="center", fontsize=7)
    answers = [f"{p['answers']} answer{'' if p['answers'] == 1 else 's'}" for p in people]
    ax.set_yticks(y, [f"{p['name']} ({n})" for p, n in zip(people, answers, strict=True)], fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_title("annotators: agreement with consensus (blue), accuracy on gold items (orange)")


# -- drawing in another process -----------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None


def _start_drawing_process(parent: int) -> None:
    """In the drawing process: import matplotlib, and exit when the parent is gone (a flow run
    killed by a signal, e.g. cancelled by a Prefect worker, runs no clean-up of its own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _drawer() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_drawing_process,
            initargs=(os.getpid(),),
        )
    return _pool


def warm_up() -> None:
    """Start the drawing process now, so that it has imported matplotlib before it is needed."""
    try:
        _drawer().submit(int)
    except (BrokenProcessPool, RuntimeError, OSError):
        _forget_pool()


def draw_in_background(data: dict[str, Any]) -> Future:
    """Start drawing report.png from :func:`figure_data` in the drawing process; the future
    gives PNG bytes."""
    try:
        return _drawer().submit(render_png, data)
    except (BrokenProcessPool, RuntimeError, OSError):
        _forget_pool()
        done: Future = Future()
        done.set_result(render_png(data))
        return done


def png_bytes(drawing: Future, data: dict[str, Any]) -> bytes:
    """The bytes ``drawing`` gives, or, when the drawing process died, the same picture (of
    ``data``, what it was given) drawn here."""
    try:
        return drawing.result()
    except BrokenProcessPool:
        _forget_pool()
        return render_png(data)


def _forget_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None
