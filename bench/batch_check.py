"""The review-sync's batch check on a big project: how long "how many of the awaited tasks have
their answers?" takes, on a real Label Studio.

One project of ``--tasks`` (default 50,000) tasks, like ``bench.sync_speed``'s; a waiting run's
batch of ``--awaited`` (default 1,000) of them, chosen at random, of which ``--answered``
(default 500) have their one answer. Against the running Label Studio
(``source deploy/secrets.sh``). Run from the repo root::

    .venv/bin/python -m bench.batch_check [--tasks 50000] [--awaited 1000] [--answered 500]

Timed, each checked against the answers made:

- **early stop** (the webhook receiver): ``review_batch_status(awaited=...)``, which lists the
  project's unlabeled tasks and stops at the first awaited one that lacks answers; it answers
  "complete?" only (its count is a lower bound);
- **exact, by item ids** (the review-sync's progress bar): ``review_batch_status(awaited=...,
  exact=True)``, which lists the awaited tasks Label Studio does not count as labeled, through a
  Data Manager filter on their item ids, 500 ids a query;
- **exact, by the unlabeled listing**: every unlabeled task of the project, page by page, counting
  the awaited ones (what the exact check would cost without the item-id filter);
- **naive SDK loop**: ``label_studio_sdk`` ``tasks.list`` over every task, counting the awaited
  tasks with an annotation.

Projects are titled ``bench-sync-check-...`` and deleted at the end (with any left by an
earlier run). The table goes to stdout and ``bench/results/batch_check.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench.noise_detection import machine
from bench.sync_speed import CLASSES, delete_bench_projects, make_items, task_ids_of, timed
from flows.review_sync import review_batch_status
from labelgate.labelconfig import label_config
from labelgate.labelstudio import LabelStudio
from labelgate.settings import get_settings

logger = logging.getLogger("bench.batch_check")

RESULTS = Path(__file__).parent / "results" / "batch_check.md"
ONE_EACH = SimpleNamespace(review=SimpleNamespace(annotators_per_item=1))


def by_unlabeled_listing(client: LabelStudio, project: int, awaited: frozenset[str]) -> int:
    """Awaited tasks with their answers, from the listing of every unlabeled task."""
    short = sum(
        1
        for task in client.iter_tasks(project, unlabeled=True, page_size=100)
        if task["item_id"] in awaited and task["total_annotations"] + task["cancelled_annotations"] < 1
    )
    return len(awaited) - short


def by_sdk_loop(sdk: Any, project: int, awaited: frozenset[str]) -> int:
    """Awaited tasks with an annotation, from every task of the project through the SDK."""
    done = 0
    for task in sdk.tasks.list(project=project, fields="task_only", page_size=1000):
        item = (task.data or {}).get("item_id")
        if item in awaited and int(task.total_annotations or 0) + int(task.cancelled_annotations or 0) >= 1:
            done += 1
    return done


def run(args: argparse.Namespace) -> dict[str, Any]:
    from label_studio_sdk import LabelStudio as SDK

    settings = get_settings()
    if settings.labelstudio_api_key is None:
        raise SystemExit("set LABEL_STUDIO_API_KEY (source deploy/secrets.sh)")
    key = settings.labelstudio_api_key.get_secret_value()
    sdk = SDK(base_url=settings.labelstudio_url, api_key=key, timeout=600)
    client = LabelStudio(settings.labelstudio_url, key, timeout=120)
    slow = LabelStudio(settings.labelstudio_url, key, timeout=1800, retries=0)
    out: dict[str, Any] = {"tasks": args.tasks, "awaited": args.awaited, "answered": args.answered}
    out["load"] = [os.getloadavg()[0], None]
    delete_bench_projects(sdk, slow)
    try:
        items = make_items(args.tasks, seed=0)
        stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
        config = label_config(CLASSES, kind="text", instructions="Pick the topic.")
        project = client.ensure_project(title=f"bench-sync-check-{stamp}", label_config=config)
        seconds, created = timed(lambda: client.import_items(project, items))
        logger.info("imported %d tasks in %.0f s", created, seconds)
        rng = np.random.default_rng(3)
        batch = rng.choice(items["item_id"].to_numpy(), size=args.awaited, replace=False)
        awaited = frozenset(map(str, batch))
        answered = sorted(map(str, batch[: args.answered]))
        for task_id in task_ids_of(sdk, project, answered):
            client.create_annotation(task_id, str(rng.choice(CLASSES)), project_id=project)
        logger.info("%d of %d awaited tasks answered", len(answered), len(awaited))

        runs = [
            timed(lambda: review_batch_status(client, ONE_EACH, project_id=project, awaited=awaited))
            for _ in range(3)
        ]
        if any(status.complete for _, status in runs):
            raise SystemExit("the early-stop check called an incomplete batch complete")
        out["early_s"] = statistics.median(s for s, _ in runs)
        exact = [
            timed(
                lambda: review_batch_status(client, ONE_EACH, project_id=project, awaited=awaited, exact=True)
            )
            for _ in range(3)
        ]
        counts = {status.answered for _, status in exact}
        if counts != {len(answered)}:
            raise SystemExit(f"the exact check counted {counts}, not {len(answered)}")
        out["exact_ids_s"] = statistics.median(s for s, _ in exact)
        out["exact_listing_s"], n = timed(lambda: by_unlabeled_listing(client, project, awaited))
        if n != len(answered):
            raise SystemExit(f"the unlabeled listing counted {n}, not {len(answered)}")
        out["naive_s"], n = timed(lambda: by_sdk_loop(sdk, project, awaited))
        if n != len(answered):
            raise SystemExit(f"the SDK loop counted {n}, not {len(answered)}")
        logger.info("timings: %s", {k: round(v, 2) for k, v in out.items() if k.endswith("_s")})
    finally:
        out["load"][1] = os.getloadavg()[0]
        delete_bench_projects(sdk, slow)
        client.close()
        slow.close()
    return out


def report(out: dict[str, Any], *, started: dt.datetime) -> str:
    n, b, a = out["tasks"], out["awaited"], out["answered"]
    naive = out["naive_s"]
    rows = [
        ("early stop: complete? (the webhook receiver)", out["early_s"], "no (a lower bound)"),
        ("exact, by item ids (the review-sync's progress bar)", out["exact_ids_s"], f"yes ({a})"),
        ("exact, by the unlabeled listing", out["exact_listing_s"], f"yes ({a})"),
        ("naive SDK loop over every task", naive, f"yes ({a})"),
    ]
    lines = [
        "# The review-sync's batch check on a big project",
        "",
        f"- command: `python -m bench.batch_check --tasks {n} --awaited {b} --answered {a}` "
        "(repo root, `.venv/bin/python`, after `source deploy/secrets.sh`)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}; Label Studio 1.23.2 (SQLite) on the same machine; load average "
        f"{out['load'][0]:.1f} at the start, {out['load'][1]:.1f} at the end",
        f"- a project of {n:,} tasks; a waiting run's batch of {b:,} of them, {a:,} answered (one "
        "answer each is what the batch asks); the other tasks unanswered and awaited by nobody",
        "- the first two: median of 3; the last two: one run",
        "",
        "| check | seconds | exact count | vs the SDK loop |",
        "|---|---:|---|---:|",
        *(f"| {name} | {s:,.2f} | {exact} | {naive / s:,.0f}x |" for name, s, exact in rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--awaited", type=int, default=1_000)
    parser.add_argument("--answered", type=int, default=500)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = dt.datetime.now(dt.UTC)
    text = report(run(args), started=started)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
