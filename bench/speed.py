"""Speed and memory: the whole pipeline vs a bare script doing the same fits and cleanlab calls.

For each size, a seeded synthetic text job (``bench/synthetic.py``) is written to disk. Then, each
in its own subprocess so peak memory is its own:

- ``pipeline``: ``labelgate run`` end to end — Prefect flow (embedded server), ingest with checks,
  autolabel, audit, gate, quarantine, publish to Delta, label events, report;
- ``bare``: a plain script: pandas reads the CSV, then the same ``out_of_sample_proba``,
  ``fit_model``, ``predict_proba_unlabeled`` and ``audit_labels`` calls (same models, same folds,
  same cleanlab settings) and nothing else.

Run from the repo root::

    .venv/bin/python -m bench.speed [--sizes 100000,1000000]

Results go to stdout and ``bench/results/speed.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys;"
               "r = subprocess.run(sys.argv[1:]);"
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
               "sys.exit(r.returncode)", *cmd]
    result = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    peak_kb = int(result.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024 / 1024


def run(sizes: list[int]) -> str:
    from bench.synthetic import write_job

    repo = Path(__file__).resolve().parents[1]
    labelgate = str(Path(sys.executable).parent / "labelgate")
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            spec, _ = write_job(Path(tmp), n)
            env = dict(os.environ, LABELGATE_STORE=f"{tmp}/store", LABELGATE_RUNS_DIR=f"{tmp}/runs",
                       PYTHONPATH=str(repo))
            env.pop("PREFECT_API_URL", None)
            bare_s, bare_gb = _timed([sys.executable, "-c", BARE, str(spec.with_suffix(".csv"))], env)
            pipe_s, pipe_gb = _timed([labelgate, "run", str(spec)], env)
            rows.append((n, pipe_s, pipe_gb, bare_s, bare_gb))
            print(f"{n}: pipeline {pipe_s:.1f}s {pipe_gb:.2f}GB, bare {bare_s:.1f}s {bare_gb:.2f}GB",
                  file=sys.stderr)
    lines = [
        "# Speed and memory: whole pipeline vs bare script",
        "",
        f"- command: `.venv/bin/python -m bench.speed --sizes {','.join(map(str, sizes))}`",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        "- data: synthetic short texts, 5 classes, 10% pair-flip noise, 10% unlabeled (bench/synthetic.py)",
        "- bare: pandas read + the same out_of_sample_proba / fit_model / predict / audit_labels calls",
        "- pipeline: `labelgate run` end to end on Prefect's embedded server (includes Prefect start-up,"
        " dataset checks, Delta publish, label events, report)",
        "",
        "| items | pipeline s | pipeline peak GB | bare s | bare peak GB | time ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ps, pg, bs, bg in rows:
        lines.append(f"| {n:,} | {ps:.1f} | {pg:.2f} | {bs:.1f} | {bg:.2f} | {ps / bs:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args(argv)
    text = run([int(s) for s in args.sizes.split(",")])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
