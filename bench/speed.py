"""Speed and memory: the whole pipeline vs a bare script doing the same fits and cleanlab calls.

For each size, a seeded synthetic text job (``bench/synthetic.py``) is written to disk. Then, each
in its own subprocess so peak memory is its own:

- ``pipeline``: ``labelgate run`` end to end — Prefect flow (embedded server), ingest with checks,
  autolabel, audit, gate, quarantine, publish to Delta, label events, report;
- ``bare``: a plain script: pandas reads the CSV, then the same ``out_of_sample_proba``,
  ``fit_model``, ``predict_proba_unlabeled`` and ``audit_labels`` calls (same models, same folds,
  same cleanlab settings) and nothing else.

- ``pipeline, running server``: the same, against an already running Prefect server
  (``--api-url``), as under ``make stack`` or a team's server.

Run from the repo root::

    .venv/bin/python -m bench.speed [--sizes 100000,1000000] [--repeats 5] [--api-url URL]

Results go to stdout and ``bench/results/speed.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import write_results
from bench.noise_detection import machine

RESULTS = Path(__file__).parent / "results" / "speed.md"

BARE = r"""
import sys, numpy as np, pandas as pd
from tasks.autolabel import out_of_sample_proba, fit_model, predict_proba_unlabeled
from tasks.audit import audit_labels
from bench.synthetic import CLASSES
frame = pd.read_csv(sys.argv[1], dtype={"id": str, "label": str})
codes = frame["label"].map({c: i for i, c in enumerate(CLASSES)})
labeled = codes.notna().to_numpy()
X = frame["text"].to_numpy(dtype=object)
y = codes[labeled].to_numpy(dtype=int)
k = len(CLASSES)
p = out_of_sample_proba(X[labeled], y, kind="text", n_folds=5, seed=0, classes=k)
model = fit_model(X[labeled], y, kind="text", seed=0, classes=k)
pu = predict_proba_unlabeled(model, X[~labeled])
table, probs = audit_labels(X[labeled], y, kind="text", seed=0, n_folds=5, classes=k, pred_probs=p)
print(int(table["is_suspect"].sum()))
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of a child process."""
    start = time.perf_counter()
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys;"
        "r = subprocess.run(sys.argv[1:]);"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
        "sys.exit(r.returncode)",
        *cmd,
    ]
    result = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    peak_kb = int(result.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024 / 1024


def run(sizes: list[int], *, repeats: int = 1, api_url: str | None = None) -> str:
    """Bare, pipeline on the embedded server and (with ``api_url``) pipeline against a running
    Prefect server, interleaved ``repeats`` times per size; medians reported."""
    from bench.synthetic import write_job

    repo = Path(__file__).resolve().parents[1]
    labelgate = str(Path(sys.executable).parent / "labelgate")
    rows = []
    for n in sizes:
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "embedded": [], "server": []}
        with tempfile.TemporaryDirectory() as tmp:
            spec, _ = write_job(Path(tmp), n)
            for r in range(repeats):
                env = dict(
                    os.environ,
                    LABELGATE_STORE=f"{tmp}/store{r}",
                    LABELGATE_RUNS_DIR=f"{tmp}/runs{r}",
                    PYTHONPATH=str(repo),
                )
                env.pop("PREFECT_API_URL", None)
                runs["bare"].append(_timed([sys.executable, "-c", BARE, str(spec.with_suffix(".csv"))], env))
                runs["embedded"].append(_timed([labelgate, "run", str(spec)], env))
                if api_url:
                    server_env = dict(env, PREFECT_API_URL=api_url, LABELGATE_STORE=f"{tmp}/server-store{r}")
                    runs["server"].append(_timed([labelgate, "run", str(spec)], server_env))
                print(
                    f"{n} run {r + 1}/{repeats}: "
                    + ", ".join(f"{k} {v[-1][0]:.1f}s {v[-1][1]:.2f}GB" for k, v in runs.items() if v),
                    file=sys.stderr,
                )
        rows.append((n, runs))
    command = f".venv/bin/python -m bench.speed --sizes {','.join(map(str, sizes))} --repeats {repeats}"
    if api_url:
        command += " --api-url URL"
    lines = [
        "# Speed and memory: whole pipeline vs bare script",
        "",
        f"- command: `{command}`",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        "- data: synthetic short texts, 5 classes, 10% pair-flip noise, 10% unlabeled (bench/synthetic.py)",
        "- bare: pandas read + the same out_of_sample_proba / fit_model / predict / audit_labels calls",
        "- pipeline: `labelgate run` end to end (dataset checks, screening, autolabel, audit, drift, gates,"
        " Delta publish, label events, report), on Prefect's embedded server (started and stopped by the"
        " run) or against an already running Prefect server (`PREFECT_API_URL`)",
        f"- seconds and GB: medians of {repeats} interleaved run(s); ratio: median of the per-run ratios",
        "",
        "| items | pipeline, embedded server s | pipeline, running server s | pipeline peak GB | bare s "
        "| bare peak GB | ratio, embedded | ratio, running server |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    med = statistics.median
    for n, runs in rows:
        bare = [s for s, _ in runs["bare"]]
        emb = [s for s, _ in runs["embedded"]]
        srv = [s for s, _ in runs["server"]]
        peak = med([g for _, g in runs["embedded"] + runs["server"]])
        ratio_emb = med([a / b for a, b in zip(emb, bare, strict=True)])
        ratio_srv = f"{med([a / b for a, b in zip(srv, bare, strict=True)]):.2f}" if srv else "—"
        bare_peak = med([g for _, g in runs["bare"]])
        lines.append(
            f"| {n:,} | {med(emb):.1f} | {f'{med(srv):.1f}' if srv else '—'} | {peak:.2f} | {med(bare):.1f} "
            f"| {bare_peak:.2f} | {ratio_emb:.2f} "
            f"| {ratio_srv} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--repeats", type=int, default=1, help="Interleaved runs per size (medians).")
    parser.add_argument(
        "--api-url", help="A running Prefect server's API URL: also time the pipeline against it."
    )
    args = parser.parse_args(argv)
    text = run([int(s) for s in args.sizes.split(",")], repeats=args.repeats, api_url=args.api_url)
    write_results(text, args.out)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
