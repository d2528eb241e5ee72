"""The validation benchmark's noise planting does what its docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from bench.validation import plant_autolabel_noise


@pytest.mark.parametrize("kind", ["uniform", "class"])
def test_planted_autolabel_noise_switches_the_share_and_keeps_confidence(kind):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=1000)
    y = probs.argmax(axis=1)
    noisy = plant_autolabel_noise(probs, y, rate=0.1, seed=1, kind=kind)
    switched = noisy.argmax(axis=1) != probs.argmax(axis=1)
    assert switched.sum() == 100
    np.testing.assert_allclose(noisy.max(axis=1), probs.max(axis=1))
    np.testing.assert_allclose(noisy.sum(axis=1), 1.0)
    if kind == "class":  # only the first half of the classes, each as the next class
        assert set(y[switched]) <= {0, 1}
        assert (noisy.argmax(axis=1)[switched] == (y[switched] + 1) % 4).all()
