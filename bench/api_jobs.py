"""Job submission through the HTTP API: 200 small jobs, against calling the flow directly.

Set-up (real parts, started here and stopped at the end): a Prefect server of its own
(``prefect server start`` on port 4310, SQLite in a temporary PREFECT_HOME, so no other work
shares its database), a process worker from ``deploy/worker.sh`` on a queue of this run's
(``--limit`` flow runs at once), and ``labelgate serve``. The client retries a submission that
times out with the same ``Idempotency-Key``, as a real client would; retries are counted. Each job labels the
same small tabular file (iris, 150 rows, 20% of labels hidden) into a label set of its own.

Measured:

- submit latency: ``POST /jobs`` round trip at the client, p50 and p99;
- wait: from the POST's answer to the flow run's start (both clocks are this machine's);
- completion: every job ends Completed with exactly one label-set version, and 20 repeated
  submissions with the same ``Idempotency-Key`` start nothing new (none lost, none doubled);
- time per job: wall time from the first submission to the last job's end, divided by the
  number of jobs, against the same jobs run by calling ``labeling_job(spec)`` one after another
  in one process on the same Prefect server (the bare reference), as a ratio.

Run from the repo root::

    .venv/bin/python -m bench.api_jobs [--jobs 200] [--direct 20] [--limit 2]

Results go to stdout and ``bench/results/api_jobs.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import load_iris

from bench.noise_detection import machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "api_jobs.md"
PREFECT_PORT = 4310
PREFECT_API = f"http://127.0.0.1:{PREFECT_PORT}/api"


def start_prefect(folder: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [
            str(REPO / ".venv/bin/prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(PREFECT_PORT),
        ],
        env=env,
        stdout=(folder / "prefect.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(240):
        try:
            if httpx.get(f"{PREFECT_API}/health", trust_env=False).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not start; see {folder / 'prefect.log'}")


def submit(client: httpx.Client, body: dict, key: str) -> tuple[httpx.Response, int]:
    """POST /jobs, retried with the same key on a timeout or a 5xx; returns (answer, retries)."""
    for attempt in range(6):
        try:
            answer = client.post("/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.TimeoutException:
            continue
        if answer.status_code < 500:
            answer.raise_for_status()
            return answer, attempt
        time.sleep(2)
    raise RuntimeError(f"submission {key} failed 6 times")


def write_data(folder: Path) -> str:
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame.insert(0, "id", [f"f{i:03d}" for i in range(len(frame))])
    frame["label"] = np.asarray(iris.target_names)[iris.target]
    frame = frame.drop(columns="target")
    frame.loc[np.random.default_rng(0).random(len(frame)) < 0.2, "label"] = None
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "iris.csv", index=False)
    return str(folder / "iris.csv")


def spec(path: str, label_set: str) -> dict:
    return {
        "name": "bench-job",
        "dataset": {
            "path": path,
            "id_column": "id",
            "feature_columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "label_column": "label",
        },
        "schema": {"classes": ["setosa", "versicolor", "virginica"]},
        "autolabel": {"target_accuracy": 0.9, "n_folds": 3},
        "output": {"label_set": label_set},
        "rights": {"license": "CC-BY-4.0", "source": "UCI iris via scikit-learn"},
    }


DIRECT = r"""
import json, sys, time
from flows.labeling_job import labeling_job
from labelgate.spec import LabelingJobSpec
specs = json.load(open(sys.argv[1]))
start = time.perf_counter()
for s in specs:
    labeling_job(LabelingJobSpec.model_validate(s))
print(json.dumps({"seconds": time.perf_counter() - start, "jobs": len(specs)}))
"""


def run_direct(folder: Path, path: str, n: int) -> float:
    """Seconds per job when one process calls the flow ``n`` times (imports not counted)."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [spec(path, f"direct-{i:03d}") for i in range(n)]
    (folder / "direct.json").write_text(json.dumps(specs))
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API,
        "LABELGATE_STORE": str(folder / "direct-store"),
        "LABELGATE_RUNS_DIR": str(folder / "direct-runs"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    out = subprocess.run(
        [sys.executable, "-c", DIRECT, str(folder / "direct.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"] / result["jobs"]


def start_stack(folder: Path, limit: int) -> tuple[dict, subprocess.Popen, str, dict]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "LABELGATE_STORE": str(folder / "store"),
        "LABELGATE_RUNS_DIR": str(folder / "runs"),
        "LABELGATE_WORKER_STATE": str(folder / "worker"),
        "LABELGATE_WORK_QUEUE": queue,
        "LABELGATE_WORKER_LIMIT": str(limit),
        "LABELGATE_DATA_ROOTS": json.dumps([str(folder / "data")]),
        "LABELGATE_API_TOKENS": json.dumps({token: ["read", "submit"]}),
    }
    subprocess.run(
        ["bash", "-c", "source deploy/secrets.sh && exec bash deploy/worker.sh"],
        cwd=REPO,
        env=env,
        check=True,
    )
    port = 8765
    api = subprocess.Popen(
        [str(REPO / ".venv/bin/labelgate"), "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=(folder / "api.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{url}/health", trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    return env, api, url, {"Authorization": f"Bearer {token}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--direct", type=int, default=20, help="jobs for the direct-call reference")
    parser.add_argument("--limit", type=int, default=2, help="flow runs the worker runs at once")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    path = write_data(folder / "data")
    prefect = start_prefect(folder)
    print(f"direct reference: {args.direct} jobs in one process ...", flush=True)
    direct_before = run_direct(folder / "before", path, args.direct)
    print(f"  {direct_before:.2f} s per job", flush=True)

    env, api, url, auth = start_stack(folder, args.limit)
    try:
        client = httpx.Client(base_url=url, headers=auth, timeout=60, trust_env=False)
        submitted, latency, keys, retries = {}, [], {}, 0
        run = f"bench-{uuid.uuid4().hex[:8]}"  # idempotency keys of this run only
        first = time.time()
        for i in range(args.jobs):
            key = f"{run}-{i}"
            t0 = time.perf_counter()
            answer, again = submit(client, spec(path, f"{run}-{i:03d}"), key)
            retries += again
            latency.append(time.perf_counter() - t0)
            submitted[answer.json()["id"]] = time.time()
            keys[key] = answer.json()["id"]
        sample = range(0, args.jobs, max(1, args.jobs // 20))
        repeats = {
            i: client.post(
                "/jobs", json=spec(path, f"{run}-{i:03d}"), headers={"Idempotency-Key": f"{run}-{i}"}
            )
            for i in sample
        }
        replayed_same = all(
            r.status_code == 200 and r.json()["id"] == keys[f"{run}-{i}"] for i, r in repeats.items()
        )
        print(f"submitted {len(submitted)} jobs; waiting for them ...", flush=True)
        final = {}
        while len(final) < len(submitted):
            params = {"limit": 200, "state": ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]}
            page = client.get("/jobs", params=params).json()
            for _ in range(3):  # others' runs may be newer than ours: a few pages
                final.update({j["id"]: j for j in page["items"] if j["id"] in submitted})
                if not page["next"]:
                    break
                page = client.get(page["next"].replace(url, "")).json()
            print(f"  {len(final)}/{len(submitted)} finished", end="\r", flush=True)
            if len(final) < len(submitted):
                time.sleep(5)
        last_end = max(dt.datetime.fromisoformat(j["ended"]).timestamp() for j in final.values())
        total = last_end - first
        waits = [dt.datetime.fromisoformat(j["started"]).timestamp() - submitted[i] for i, j in final.items()]
        completed = sum(j["state"] == "Completed" for j in final.values())
        runs_for_api_sets = sum(
            len(client.get("/jobs", params={"label_set": f"{run}-{i:03d}"}).json()["items"])
            for i in range(args.jobs)
        )
        versions = [len(client.get(f"/label-sets/{run}-{i:03d}/versions").json()) for i in range(args.jobs)]
        api.terminate()
        subprocess.run(["bash", "deploy/worker-stop.sh"], cwd=REPO, env=env, check=False)
        # the reference again after the API run, so a change in the machine's load shows
        direct_after = run_direct(folder / "after", path, args.direct)
    finally:
        api.terminate()
        os.killpg(prefect.pid, 15)
        subprocess.run(["bash", "deploy/worker-stop.sh"], cwd=REPO, env=env, check=False)

    direct = (direct_before + direct_after) / 2
    per_job = total / args.jobs
    both = f"{direct_before:.2f} / {direct_after:.2f}"
    replay_note = f"all {len(repeats)}" if replayed_same else "NO"
    lat = np.asarray(latency) * 1000
    table = f"""# Job submission through the API (issue: job submission API)

Command: `.venv/bin/python -m bench.api_jobs --jobs {args.jobs} --direct {args.direct} --limit {args.limit}`
Machine: {machine()}, {dt.date.today().isoformat()}. Prefect server on SQLite
of its own, one process worker running at most {args.limit} flow runs at once, the
API under `labelgate serve`. Each job: iris (150 rows, 4 features, 20% unlabeled), review none.

| measure | value |
|---|---:|
| jobs submitted | {args.jobs} |
| submit latency p50 | {np.percentile(lat, 50):.0f} ms |
| submit latency p99 | {np.percentile(lat, 99):.0f} ms |
| submissions retried after a timeout (same key) | {retries} |
| wait from submission to start, p50 | {np.percentile(waits, 50):.1f} s |
| wait from submission to start, max | {max(waits):.1f} s |
| jobs Completed | {completed} / {args.jobs} |
| label sets with exactly one version | {sum(v == 1 for v in versions)} / {args.jobs} |
| flow runs for the {args.jobs} label sets (duplicates would show here) | {runs_for_api_sets} |
| repeated Idempotency-Keys answered with the first job | {replay_note} |
| wall time, first submission to last end | {total:.0f} s |
| time per job through the API | {per_job:.2f} s |
| time per job calling the flow directly, before / after (one process, {args.direct} jobs) | {both} s |
| ratio API / direct (mean of before and after) | {per_job / direct:.2f} |
"""
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table)
    print()
    print(table)


if __name__ == "__main__":
    main()
