"""report.png drawn in the drawing process is the picture drawn here; a dead drawing process does
not lose the picture."""

import numpy as np
import pandas as pd

from tasks import report_figure
from tasks.report import counts
from tasks.report_figure import draw_in_background, figure_data, png_bytes, render_png

CLASSES = ["fox", "cat", "dog"]  # not in alphabetical order


def _rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    given = rng.choice(CLASSES, n)
    predicted = np.where(rng.random(n) < 0.8, given, rng.choice(CLASSES, n))
    status = np.where(given == predicted, "accepted", "quarantined")
    return pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "label": given,
            "given_label": given,
            "predicted_label": predicted,
            "status": status,
            "source": "given",
            "quality": rng.random(n),
        }
    )


def _curves():
    return {
        c: {
            "threshold": np.linspace(0.99, 0.4, 20),
            "coverage": np.linspace(0.05, 1, 20),
            "accuracy": np.linspace(1, 0.8, 20),
        }
        for c in CLASSES
    }


def _thresholds():
    """cat certified at 0.7, dog at nothing, fox above every prediction."""
    return {"cat": {"threshold": 0.7}, "dog": {"threshold": float("inf")}, "fox": {"threshold": 0.995}}


def test_figure_data_counts_what_the_rows_say():
    rows = _rows()
    data = figure_data(rows, classes=CLASSES, curves=_curves())
    assert data["confusion"].sum() == len(rows)
    assert np.trace(data["confusion"]) == int((rows["given_label"] == rows["predicted_label"]).sum())
    assert data["by_class"]["counts"]["accepted"].sum() == (rows["status"] == "accepted").sum()
    assert len(data["quality"]["quarantined"]) == int((rows["status"] == "quarantined").sum())
    assert data["by_class"]["labels"] == CLASSES  # the schema's order, not the alphabet's
    assert counts(rows, CLASSES)["by_class"].index.tolist() == CLASSES  # and so in report.md


def test_each_threshold_is_marked_where_it_falls_on_its_curve():
    curves = _curves()
    data = figure_data(_rows(), classes=CLASSES, curves=curves, target=0.9, thresholds=_thresholds())
    cat = curves["cat"]
    last_accepted = np.flatnonzero(cat["threshold"] >= 0.7)[-1]
    assert cat["threshold"][last_accepted + 1] < 0.7
    assert data["curves"]["cat"]["chosen"] == (cat["coverage"][last_accepted], cat["accuracy"][last_accepted])
    assert data["curves"]["dog"]["chosen"] is None  # certified nothing
    assert data["curves"]["fox"]["chosen"] is None  # above every prediction: accepts none
    assert data["target"] == 0.9


def _png_height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # IHDR: width, then height


def test_the_people_who_answered_get_a_panel_of_their_own():
    keys = ("annotator", "answers", "agreement_with_consensus", "gold_answers", "gold_accuracy")
    people = [
        dict(zip(keys, ("ann", 40, 0.95, 5, 1.0), strict=True)),
        dict(zip(keys, ("bob", 12, 0.7, 0, None), strict=True)),
    ]
    rows, curves = _rows(), _curves()
    data = figure_data(rows, classes=CLASSES, curves=curves, annotators=people)
    assert [p["name"] for p in data["annotators"]] == ["bob", "ann"]  # the least agreeing first
    assert np.isnan(data["annotators"][0]["gold_accuracy"]) and data["annotators"][1]["gold_accuracy"] == 1.0
    without = render_png(figure_data(rows, classes=CLASSES, curves=curves))
    assert _png_height(render_png(data)) > _png_height(without)


def test_the_drawing_process_draws_the_same_png_as_this_process():
    rows, curves = _rows(), _curves()
    data = figure_data(rows, classes=CLASSES, curves=curves, target=0.9, thresholds=_thresholds())
    here = render_png(data)
    there = png_bytes(draw_in_background(data), data)
    assert there[:8] == b"\x89PNG\r\n\x1a\n"
    assert there == here


def test_a_dead_drawing_process_still_gives_the_picture():
    rows, curves = _rows(seed=1), _curves()
    report_figure.warm_up()
    report_figure._drawer().submit(int).result(timeout=60)  # the worker is up
    for process in list(report_figure._drawer()._processes.values()):
        process.kill()
        process.join()
    data = figure_data(rows, classes=CLASSES, curves=curves)
    png = png_bytes(draw_in_background(data), data)
    assert png == render_png(data)
    # and the next drawing gets a fresh process
    again = draw_in_background(data)
    assert again.result(timeout=60) == png


KILLED_PARENT = """
import sys, time
from tasks import report_figure
report_figure.warm_up()
report_figure._drawer().submit(int).result(timeout=60)
print(*report_figure._drawer()._processes, flush=True)
time.sleep(600)
"""


def test_the_drawing_process_exits_when_its_flow_run_is_killed():
    """A flow run killed by a signal (as Prefect cancels one) runs no clean-up; the drawing
    process must not stay behind."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert workers, "the drawing process did not start"
    assert all(Path(f"/proc/{pid}").exists() for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
