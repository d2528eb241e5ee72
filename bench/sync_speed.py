"""Sync speed: labelgate's Label Studio adapter vs the naive SDK loop, on a real Label Studio.

Two measurements on one project of ``--tasks`` (default 50,000) tasks, each with a model
prediction, against the running Label Studio (``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``,
``source deploy/secrets.sh``). Run from the repo root::

    .venv/bin/python -m bench.sync_speed [--tasks 50000] [--naive-sample 1000]
        [--new-annotations 500] [--page-size 1000]

1. **Import with predictions.**

   - labelgate: ``LabelStudio.import_items`` (tasks and predictions together through the bulk
     import endpoint, 500 per call; into an empty project it skips its per-chunk
     idempotence look-up), on all the tasks.
   - naive: ``label_studio_sdk`` 2.1, one ``tasks.create`` per task plus one
     ``predictions.create`` per prediction. Run on ``--naive-sample`` tasks only (on 50k it
     would take hours), and **extrapolated linearly** per task to the full size.
   - also, like for like: labelgate on the same sample size, and a rerun of labelgate's import
     of all tasks (nothing new: the idempotent path of a job restarted after a crash).

2. **Incremental sync after ``--new-annotations`` new annotations** (spread at random over the
   project, on the full-size labelgate project):

   - labelgate: ``LabelStudio.fetch_annotations(since=cursor)``, the cursor taken before the
     annotations were made (median of 3 calls);
   - naive: list every task page by page through the SDK (``tasks.list(fields="all")``, which
     carries each task's annotations) and keep the annotations updated after the cursor.

   Both must return exactly the new annotations (checked).

Projects are titled ``bench-sync-...``; every such project, including those left by an earlier
interrupted run, is deleted at the end. The table goes to stdout and
``bench/results/sync_speed.md``. The API token is never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.noise_detection import machine
from labelgate.labelconfig import label_config
from labelgate.labelstudio import LabelStudio
from labelgate.settings import get_settings

logger = logging.getLogger("bench.sync_speed")

RESULTS = Path(__file__).parent / "results" / "sync_speed.md"
PREFIX = "bench-sync-"
CLASSES = ["sports", "food", "tech", "politics", "music"]
TARGET = 5.0
WORDS = [
    "match",
    "goal",
    "team",
    "coach",
    "season",
    "pasta",
    "recipe",
    "oven",
    "flavor",
    "chef",
    "laptop",
    "chip",
    "software",
    "network",
    "vote",
    "senate",
    "policy",
    "election",
    "guitar",
    "album",
    "concert",
    "melody",
]


def make_items(n: int, *, seed: int, offset: int = 0) -> pd.DataFrame:
    """``n`` short texts with a predicted class and score, in ``import_items``'s frame."""
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=(n, 12))
    return pd.DataFrame(
        {
            "item_id": [f"s{offset + i:07d}" for i in range(n)],
            "data": [{"text": " ".join(row)} for row in words],
            "route_reason": "below the confidence threshold",
            "prediction": rng.choice(CLASSES, size=n),
            "prediction_score": rng.uniform(0.2, 0.95, size=n).round(4),
            "model_version": "bench-1",
        }
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def naive_import(sdk: Any, project_id: int, items: pd.DataFrame) -> int:
    """The SDK loop: one call per task, one per prediction."""
    for row in items.itertuples(index=False):
        data = {**row.data, "item_id": row.item_id, "route_reason": row.route_reason}
        task = sdk.tasks.create(project=project_id, data=data)
        sdk.predictions.create(
            task=task.id,
            result=[
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": [row.prediction]},
                }
            ],
            score=float(row.prediction_score),
            model_version=row.model_version,
        )
    return len(items)


def naive_sync(sdk: Any, project_id: int, since: dt.datetime, *, page_size: int) -> tuple[set[int], int]:
    """List every task page by page (with annotations); keep annotations updated after ``since``."""
    new: set[int] = set()
    tasks = 0
    for task in sdk.tasks.list(project=project_id, fields="all", page_size=page_size):
        tasks += 1
        for annotation in task.annotations or []:
            if isinstance(annotation, dict):
                updated = annotation.get("updated_at")
                ident = annotation.get("id")
            else:
                updated, ident = annotation.updated_at, annotation.id
            if isinstance(updated, str):
                updated = dt.datetime.fromisoformat(updated.replace("Z", "+00:00"))
            if updated is not None and updated > since:
                new.add(int(ident))
    return new, tasks


def task_ids_of(sdk: Any, project_id: int, item_ids: list[str]) -> list[int]:
    """Task ids of the given items (a Data Manager filter on ``data.item_id``)."""
    query = {
        "filters": {
            "conjunction": "and",
            "items": [
                {
                    "filter": "filter:tasks:data.item_id",
                    "operator": "in_list",
                    "type": "String",
                    "value": item_ids,
                }
            ],
        }
    }
    tasks = sdk.tasks.list(project=project_id, fields="task_only", query=json.dumps(query), page_size=1000)
    return [int(t.id) for t in tasks]


def delete_bench_projects(sdk: Any, admin: LabelStudio) -> list[str]:
    """Delete every project whose title starts with ``PREFIX``; return their titles."""
    gone = []
    for project in list(sdk.projects.list(page_size=100)):
        if (project.title or "").startswith(PREFIX):
            admin.delete_project(int(project.id))
            gone.append(project.title)
    return gone


def project_counts(sdk: Any, project_id: int) -> tuple[int, int]:
    project = sdk.projects.get(id=project_id)
    return int(project.task_number or 0), int(project.total_predictions_number or 0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from label_studio_sdk import LabelStudio as SDK

    settings = get_settings()
    if settings.labelstudio_api_key is None:
        raise SystemExit("set LABEL_STUDIO_API_KEY (source deploy/secrets.sh)")
    key = settings.labelstudio_api_key.get_secret_value()
    sdk = SDK(base_url=settings.labelstudio_url, api_key=key, timeout=600)
    client = LabelStudio(settings.labelstudio_url, key, timeout=120)
    slow = LabelStudio(settings.labelstudio_url, key, timeout=1800, retries=0)  # deletes of 50k tasks
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    config = label_config(CLASSES, kind="text", instructions="Pick the topic.")
    out: dict[str, Any] = {"tasks": args.tasks, "sample": args.naive_sample, "new": args.new_annotations}
    out["load"] = [os.getloadavg()[0], None]
    stale = delete_bench_projects(sdk, slow)
    if stale:
        logger.info("deleted %d bench projects left by an earlier run", len(stale))
    try:
        items = make_items(args.tasks, seed=0)
        sample = make_items(args.naive_sample, seed=1, offset=10_000_000)

        # -- 1. import --------------------------------------------------------------------
        naive_project = client.ensure_project(title=f"{PREFIX}naive-{stamp}", label_config=config)
        seconds, _ = timed(lambda: naive_import(sdk, naive_project, sample))
        out["naive_sample_s"] = seconds
        out["naive_sample_counts"] = project_counts(sdk, naive_project)
        logger.info("naive SDK loop: %d tasks in %.1f s", len(sample), seconds)

        small = client.ensure_project(title=f"{PREFIX}lg-sample-{stamp}", label_config=config)
        out["lg_sample_s"], _ = timed(lambda: client.import_items(small, sample))
        out["lg_sample_counts"] = project_counts(sdk, small)
        logger.info("labelgate: %d tasks in %.1f s", len(sample), out["lg_sample_s"])

        big = client.ensure_project(title=f"{PREFIX}lg-full-{stamp}", label_config=config)
        out["lg_full_s"], created = timed(lambda: client.import_items(big, items))
        out["lg_full_created"] = created
        out["lg_full_counts"] = project_counts(sdk, big)
        logger.info("labelgate: %d tasks in %.1f s", created, out["lg_full_s"])
        out["lg_rerun_s"], out["lg_rerun_created"] = timed(lambda: client.import_items(big, items))
        logger.info("labelgate rerun: %d new in %.1f s", out["lg_rerun_created"], out["lg_rerun_s"])

        # -- 2. incremental sync ------------------------------------------------------------
        before = client.fetch_annotations(big, settle=0)
        cursor = before.attrs["cursor"]
        cursor_time = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=cursor)
        time.sleep(1.5)  # the cursor has whole-second resolution: new saves fall after it
        rng = np.random.default_rng(2)
        chosen = sorted(rng.choice(items["item_id"].to_numpy(), size=args.new_annotations, replace=False))
        task_ids = task_ids_of(sdk, big, list(chosen))
        made = {client.create_annotation(t, str(rng.choice(CLASSES)), project_id=big) for t in task_ids}
        time.sleep(2.5)  # past fetch_annotations' default settle of 1 s and the clock's rounding
        runs = []
        for _ in range(3):
            seconds, frame = timed(lambda: client.fetch_annotations(big, since=cursor))
            runs.append(seconds)
            if set(frame["annotation_id"]) != made:
                raise SystemExit(
                    f"labelgate's sync returned {len(frame)} annotations, not the {len(made)} made"
                )
        out["lg_sync_s"] = statistics.median(runs)
        out["lg_sync_runs"] = runs
        out["lg_sync_rows"] = len(frame)
        logger.info("labelgate sync: %d annotations in %.2f s", len(frame), out["lg_sync_s"])
        seconds, (found, listed) = timed(lambda: naive_sync(sdk, big, cursor_time, page_size=args.page_size))
        if found != made:
            raise SystemExit(f"naive sync found {len(found)} annotations, not the {len(made)} made")
        out["naive_sync_s"], out["naive_sync_tasks"] = seconds, listed
        logger.info("naive sync: %d tasks listed, %d new in %.1f s", listed, len(found), seconds)
    finally:
        out["load"][1] = os.getloadavg()[0]
        if not args.keep:
            start = time.perf_counter()
            gone = delete_bench_projects(sdk, slow)
            logger.info("deleted %d bench projects in %.0f s", len(gone), time.perf_counter() - start)
        client.close()
        slow.close()
    return out


def report(out: dict[str, Any], args: argparse.Namespace, *, started: dt.datetime) -> str:
    n, m = out["tasks"], out["sample"]
    per_task = out["naive_sample_s"] / m
    naive_full = per_task * n
    import_x = naive_full / out["lg_full_s"]
    sample_x = out["naive_sample_s"] / out["lg_sample_s"]
    sync_x = out["naive_sync_s"] / out["lg_sync_s"]

    def verdict(x: float) -> str:
        return f"**met** ({x:.0f}x)" if x >= TARGET else f"**missed** ({x:.1f}x)"

    lines = [
        "# Sync speed: labelgate's Label Studio adapter vs the naive SDK loop",
        "",
        f"- command: `python -m bench.sync_speed --tasks {n} --naive-sample {m} "
        f"--new-annotations {out['new']} --page-size {args.page_size}` (repo root, `.venv/bin/python`)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}; Label Studio 1.23.2 (SQLite) on the same machine, label-studio-sdk 2.1.2; "
        f"load average {out['load'][0]:.1f} at the start, {out['load'][1]:.1f} at the end (a shared machine: "
        "every timing is noisier than on an idle one, naive and labelgate alike)",
        f"- data: {n:,} short texts, 5 classes, one prediction (class, score, model version) per task",
        "- labelgate import: `LabelStudio.import_items`, tasks with their predictions through "
        "`POST /api/projects/{id}/import`, 500 per call (into an empty project, so without the "
        "per-chunk idempotence look-up; the rerun below has it)",
        "- naive import: `label_studio_sdk` `tasks.create` per task + `predictions.create` per "
        f"prediction, timed on {m:,} tasks and **extrapolated linearly** to {n:,} "
        f"({per_task * 1000:.1f} ms per task; a growing project may make the real figure higher)",
        f"- incremental sync: {out['new']} annotations created on random tasks of the "
        f"{n:,}-task project after the cursor was taken; labelgate = `fetch_annotations(since=cursor)` "
        f"(median of 3: {', '.join(f'{s:.2f}' for s in out['lg_sync_runs'])} s); naive = SDK "
        f"`tasks.list(fields='all', page_size={args.page_size})` over every task, keeping "
        "annotations updated after the cursor. Both returned exactly the new annotations.",
        f"- counts checked: labelgate project {out['lg_full_counts'][0]:,} tasks / "
        f"{out['lg_full_counts'][1]:,} predictions; naive sample {out['naive_sample_counts'][0]:,} / "
        f"{out['naive_sample_counts'][1]:,}; labelgate sample {out['lg_sample_counts'][0]:,} / "
        f"{out['lg_sample_counts'][1]:,}",
        "",
        "| measurement | naive SDK loop | labelgate | speed-up | target ≥ 5x |",
        "|---|---:|---:|---:|---|",
        f"| import {n:,} tasks with predictions | {naive_full:,.0f} s (extrapolated from {m:,}) | "
        f"{out['lg_full_s']:,.1f} s | {import_x:,.0f}x | {verdict(import_x)} |",
        f"| import {m:,} tasks with predictions (like for like) | {out['naive_sample_s']:,.1f} s | "
        f"{out['lg_sample_s']:,.2f} s | {sample_x:,.0f}x | {verdict(sample_x)} |",
        f"| incremental sync, {out['new']} new annotations in {n:,} tasks | "
        f"{out['naive_sync_s']:,.1f} s | {out['lg_sync_s']:,.2f} s | {sync_x:,.0f}x | {verdict(sync_x)} |",
        "",
        f"Rerun of labelgate's import of all {n:,} tasks (a job restarted after a crash): "
        f"{out['lg_rerun_created']} tasks created, {out['lg_rerun_s']:.1f} s. Each 500-item chunk "
        "first asks which of its items exist (a Data Manager filter on `data.item_id`, a JSON "
        "field Label Studio scans on SQLite), so that check grows with the project: it is most of "
        "the rerun's time, and a share of the first import's.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--naive-sample", type=int, default=1_000)
    parser.add_argument("--new-annotations", type=int, default=500)
    parser.add_argument("--page-size", type=int, default=1000, help="SDK page size of the naive sync")
    parser.add_argument("--keep", action="store_true", help="keep the bench projects")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = dt.datetime.now(dt.UTC)
    out = run(args)
    text = report(out, args, started=started)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
