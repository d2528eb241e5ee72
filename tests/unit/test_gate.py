import numpy as np

from tasks.gate import threshold_curve, tune_thresholds, wilson_lower


def test_wilson_lower_bound_is_below_the_rate_and_tightens_with_n():
    small = wilson_lower(9, 10)
    large = wilson_lower(900, 1000)
    assert small < 0.9 and large < 0.9
    assert large > small


def test_threshold_curve_accuracy_falls_as_coverage_grows():
    conf = np.array([0.99, 0.95, 0.9, 0.6, 0.5])
    correct = np.array([True, True, True, False, False])
    curve = threshold_curve(conf, correct)
    assert curve["coverage"].tolist() == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert curve["accuracy"].tolist() == [1.0, 1.0, 1.0, 0.75, 0.6]


def test_per_class_thresholds_meet_the_target_on_the_evidence():
    rng = np.random.default_rng(0)
    n = 40_000
    labels = rng.integers(0, 2, n)
    conf = rng.uniform(0.5, 1.0, n)
    # the model is right with probability equal to its confidence (calibrated)
    right = rng.random(n) < conf
    predicted = np.where(right, labels, 1 - labels)
    probs = np.zeros((n, 2))
    probs[np.arange(n), predicted] = conf
    probs[np.arange(n), 1 - predicted] = 1 - conf
    gates = tune_thresholds(probs, labels, target_accuracy=0.95, classes=["a", "b"])
    for code, name in enumerate(["a", "b"]):
        t = gates[name]["threshold"]
        accepted = (predicted == code) & (conf >= t)
        assert 0.9 < t < 1.0
        assert (labels[accepted] == code).mean() >= 0.95


def test_a_class_that_never_reaches_the_target_accepts_nothing():
    probs = np.array([[0.6, 0.4]] * 50 + [[0.3, 0.7]] * 200)
    labels = np.array([0, 1] * 25 + [1] * 200)  # class 0 predictions are right half the time
    gates = tune_thresholds(probs, labels, target_accuracy=0.95, classes=["a", "b"])
    assert gates["a"]["threshold"] > 0.6  # none of class a's predictions (p=0.6) is accepted
    assert gates["b"]["threshold"] <= 0.7


def test_small_classes_fall_back_to_the_pooled_threshold():
    rng = np.random.default_rng(1)
    # 10 classes, ~100 perfect predictions each: no class alone can certify 0.98
    n, k = 1000, 10
    labels = rng.integers(0, k, n)
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), labels] = 0.91
    gates = tune_thresholds(probs, labels, target_accuracy=0.98, classes=[str(c) for c in range(k)])
    assert {g["basis"] for g in gates.values()} == {"pooled"}
    assert all(g["threshold"] <= 0.91 for g in gates.values())


def test_tied_confidences_are_accepted_or_refused_together():
    conf = np.array([0.9, 0.8, 0.8, 0.8])
    correct = np.array([True, True, False, False])
    curve = threshold_curve(conf, correct)
    assert curve["threshold"].tolist() == [0.9, 0.8]
    assert curve["accuracy"].tolist() == [1.0, 0.5]
