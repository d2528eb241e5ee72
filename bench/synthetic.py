"""Seeded synthetic text jobs of any size, for the speed and memory benchmark.

Each class has its own vocabulary plus a shared one, so the task is learnable but not trivial;
``noise`` of the labels are pair-flipped and ``unlabeled`` are left empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CLASSES = ["billing", "shipping", "returns", "account", "product"]


def make_texts(n: int, *, seed: int = 0, noise: float = 0.1, unlabeled: float = 0.1):
    """Returns (frame with id,text,label; true labels as codes)."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    own = [[f"{c[:3]}{j}" for j in range(60)] for c in CLASSES]
    shared = np.array([f"w{j}" for j in range(400)])
    truth = rng.integers(0, k, n)
    n_own = rng.integers(1, 4, n)
    n_shared = rng.integers(4, 10, n)
    own_pick = rng.integers(0, 60, (n, 3))
    shared_pick = rng.integers(0, len(shared), (n, 10))
    texts = []
    for i in range(n):
        words = [own[truth[i]][j] for j in own_pick[i, : n_own[i]]]
        words += shared[shared_pick[i, : n_shared[i]]].tolist()
        texts.append(" ".join(words))
    given = truth.copy()
    flip = rng.random(n) < noise
    given[flip] = (given[flip] + 1) % k
    labels = np.asarray(CLASSES, dtype=object)[given]
    labels[rng.random(n) < unlabeled] = None
    frame = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "text": texts, "label": labels})
    return frame, truth


def write_job(folder: Path, n: int, *, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Write ``texts-<n>.csv`` and its spec; returns (spec path, true labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame, truth = make_texts(n, seed=seed)
    data = folder / f"texts-{n}.csv"
    frame.to_csv(data, index=False)
    spec = {
        "name": f"synthetic-{n}",
        "dataset": {"path": data.name, "id_column": "id", "text_column": "text", "label_column": "label"},
        "schema": {"classes": CLASSES},
        "autolabel": {"target_accuracy": 0.95, "n_folds": 5},
        "output": {"label_set": f"synthetic-{n}"},
        "rights": {"license": "CC0-1.0", "source": "bench/synthetic.py"},
    }
    path = folder / f"texts-{n}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, truth
