"""Validation gates: threshold tuning, drift detection, screening — measured on real data.

Three parts, each on ``digits`` (tabular) and ``rotten_tomatoes`` (text, see ``bench/datasets.py``),
same data, same seeds, same machine, in one run:

(a) **Threshold tuning.** An autolabeler's out-of-sample probabilities (5-fold
    ``cross_val_predict`` of StandardScaler+LogisticRegression, or TfidfVectorizer+LogisticRegression)
    give a machine label and a confidence per item. Seeded noise is planted in the autolabels: a
    share (5%, 10%, 20%) of machine labels is switched to another class at random while keeping
    its confidence (a confidently wrong autolabeler, e.g. a stale model or a bad label map).
    - ``fixed 0.95``: accept every machine label with confidence >= 0.95; people label the rest.
    - ``tuned``: people check a random sample of ``--samples`` items (300 and 900); labelgate's
      ``tasks.gate.tune_thresholds`` picks per-class thresholds on it for the target accuracy
      (0.95, one-sided 95% lower bound, exact); machine labels of the other items are accepted at or above
      their class threshold; people label the rest. Human labels = the sample + the rest.
    Reported: share of items auto-accepted, accuracy of the auto-accepted labels against the
    truth, human labels used, and whether the accepted accuracy reaches the target.
(b) **Drift.** A reference run of ``--drift-n`` (500 and 2000) random items and a current run of as many
    other items, either drawn the same way (no shift: any alarm is a false alarm) or with the
    first class's sampling weight multiplied by 1.5 or 2 (a class-distribution shift). Each pair
    goes through ``validators.drift.compare_runs`` (chi-square p < 0.01 on predicted classes, PSI
    > 0.2 on confidence and input statistics). Reported over ``--drift-seeds`` (200) seeds: the
    share flagged, per test and overall.
(c) **Screening.** Planted into the clean data: exact duplicates (a copy with other case and
    spacing / the same row), near-duplicates (a copy with one word added / two pixels one grey level off in
    pixel value), duplicates with a conflicting label, and personal data in texts (e-mails, phone
    numbers in 7 formats, Luhn-valid card numbers, mod-97-valid IBANs). Reported: recall on the
    planted items and precision of the flags (flags on items already in the data that are real
    duplicates are counted apart, as "pre-existing").

Run from the repo root::

    .venv/bin/python -m bench.validation [--datasets digits,rotten_tomatoes] [--seeds 0,1,2]

The tables go to stdout and to ``bench/results/validation.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench import write_results
from bench.datasets import load_dataset
from bench.noise_detection import machine
from tasks.gate import labels_needed, tune_thresholds, verify_machine_labels
from tasks.probe import probe_sizes, probe_thresholds, verify_probes
from tasks.route import route_items
from validators.drift import compare_runs, input_columns, input_statistics
from validators.screening import screening_checks

logger = logging.getLogger("bench.validation")

RESULTS = Path(__file__).parent / "results" / "validation.md"
TARGET = 0.95
FIXED = 0.95
#: fixed 0.95; labelgate's thresholds alone (review mode none); and with review mode's probes and
#: audit gate (``reviewed_run``)
METHODS = ("fixed 0.95", "tuned", "tuned + review")


def autolabeler_probs(X: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """5-fold out-of-sample probabilities of a plain logistic-regression autolabeler."""
    if kind == "tabular":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        model = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), LogisticRegression(max_iter=2000))
    return cross_val_predict(model, X, y, cv=5, method="predict_proba")


def plant_autolabel_noise(
    probs: np.ndarray, y: np.ndarray, *, rate: float, seed: int, kind: str = "uniform"
) -> np.ndarray:
    """Make ``rate`` of all machine labels wrong, keeping their confidence.

    kind ``uniform``: items anywhere get a random other class. kind ``class``: a systematic
    confusion — only items of the first half of the classes (at least one) are hit, each mislabeled
    as the next class (c -> c+1 mod k), so some classes' predictions are polluted and others clean.
    In a hit row the probabilities of the predicted class and the new label trade places.
    """
    rng = np.random.default_rng(seed)
    n, k = probs.shape
    noisy = probs.copy()
    predicted = probs.argmax(axis=1)
    pool = np.arange(n) if kind == "uniform" else np.flatnonzero(y < max(1, k // 2))
    hit = rng.choice(pool, size=min(round(rate * n), len(pool)), replace=False)
    for i in hit:
        other = (predicted[i] + rng.integers(1, k)) % k if kind == "uniform" else (y[i] + 1) % k
        if other == predicted[i]:
            other = (other + 1) % k
        noisy[i, [predicted[i], other]] = noisy[i, [other, predicted[i]]]
    return noisy


def threshold_run(probs: np.ndarray, y: np.ndarray, classes: list[str], *, sample: int, seed: int) -> dict:
    """Fixed 0.95 vs tuned per-class thresholds (alone, and with review's probes and audit) on
    one noisy autolabel set."""
    rng = np.random.default_rng(seed + 1000)
    n = len(y)
    checked = np.zeros(n, dtype=bool)
    checked[rng.choice(n, size=min(sample, n), replace=False)] = True
    machine_label = probs.argmax(axis=1)
    confidence = probs.max(axis=1)

    fixed = confidence >= FIXED
    thresholds = tune_thresholds(probs[checked], y[checked], target_accuracy=TARGET, classes=classes)
    cut = np.array([thresholds[c]["threshold"] for c in classes])[machine_label]
    tuned = (confidence >= cut) & ~checked
    reviewed = reviewed_run(probs, y, classes, checked, thresholds, seed=seed)

    def outcome(accepted: np.ndarray, human: int) -> dict:
        acc = float((machine_label[accepted] == y[accepted]).mean()) if accepted.any() else float("nan")
        return {"accepted": float(accepted.mean()), "accuracy": acc, "human": human}

    return {
        "fixed 0.95": outcome(fixed, int((~fixed).sum())),
        "tuned": outcome(tuned, int(checked.sum() + (~tuned & ~checked).sum())),
        "tuned + review": outcome(reviewed, int((~reviewed).sum())),
    }


def reviewed_run(
    probs: np.ndarray, y: np.ndarray, classes: list[str], checked: np.ndarray, thresholds: dict, *, seed: int
) -> np.ndarray:
    """What the flow does in review mode after the thresholds, with its own functions: probes for
    the classes nothing certified (``tasks.probe``), the route (probes, then the audit sample:
    the spec's default 5%, at least ``labels_needed``), the probes verified on people's answers,
    then the machine-label gate on the audit sample with the thresholds' evidence. People answer
    right (the truth), as the checked sample does. Returns the machine labels accepted in the end
    (everything else was labeled by people)."""
    names = np.asarray(classes, dtype=object)
    machine_label, confidence = probs.argmax(axis=1), probs.max(axis=1)
    thresholds = probe_thresholds(thresholds, probs, ~checked, classes, target_accuracy=TARGET)
    cut = np.array([thresholds[c]["threshold"] for c in classes])[machine_label]
    ids = np.array([f"i{j}" for j in range(len(y))], dtype=object)
    rows = pd.DataFrame(
        {
            "item_id": ids,
            "label": np.where(checked, names[y], names[machine_label]),
            "predicted_label": names[machine_label],
            "confidence": confidence,
            "status": np.where(checked | (confidence >= cut), "accepted", "needs_review"),
            "source": np.where(checked, "given", "model"),
            "reason": "",
        }
    )
    routed = route_items(
        rows, audit_share=0.05, seed=seed, minimum_audit=labels_needed(TARGET), probe=probe_sizes(thresholds)
    )
    asked = routed["item_id"].to_numpy()
    position = {item: j for j, item in enumerate(ids)}
    truth = names[y[[position[i] for i in asked]]]
    answers = pd.DataFrame({"item_id": asked, "annotator": "person", "label": truth})
    after = rows.copy()
    answered = after["item_id"].isin(set(asked))
    after.loc[answered, ["source", "status"]] = ["human", "accepted"]
    after.loc[answered, "label"] = after.loc[answered, "item_id"].map(dict(zip(asked, truth, strict=True)))
    probed = routed.loc[routed["route"] == "probe", "item_id"].tolist()
    after, _, _ = verify_probes(rows, after, probed, answers, thresholds, target_accuracy=TARGET)
    audited = set(routed.loc[routed["route"] == "audit_sample", "item_id"])
    evidence = (confidence[checked], machine_label[checked] == y[checked])
    after, _ = verify_machine_labels(
        rows,
        after,
        audited,
        target_accuracy=TARGET,
        answers=answers,
        evidence=evidence,
        probed=list(probe_sizes(thresholds)),
    )
    final = after.set_index("item_id").loc[ids]
    return ((final["source"] == "model") & (final["status"] == "accepted")).to_numpy()


def part_thresholds(
    data: dict, rates: list[float], seeds: list[int], samples: list[int]
) -> tuple[list[str], list]:
    lines, verdicts = [], []
    settings = [(kind, rate, sample) for sample in samples for kind in ("uniform", "class") for rate in rates]
    for name, (_, y, _, classes, probs) in data.items():
        base = float((probs.argmax(axis=1) == y).mean())
        for noise, rate, sample in settings:
            runs = []
            for seed in seeds:
                noisy = plant_autolabel_noise(probs, y, rate=rate, seed=seed, kind=noise)
                runs.append(threshold_run(noisy, y, classes, sample=sample, seed=seed))
            means = {}
            for method in METHODS:
                means[method] = {
                    key: float(np.nanmean([r[method][key] for r in runs]))
                    for key in ("accepted", "accuracy", "human")
                }
                m = means[method]
                met = "yes" if m["accuracy"] >= TARGET else "**no**"
                if m["accepted"] == 0:
                    met = "yes (accepts none)"
                size = sample if method != "fixed 0.95" else "—"
                lines.append(
                    f"| {name} | {base:.3f} | {rate:.0%} {noise} | {method} | {size} | "
                    f"{m['accepted']:.3f} | {m['accuracy']:.3f} | {m['human']:.0f} | {met} |"
                )
            fixed = means["fixed 0.95"]
            for method in METHODS[1:]:
                m = means[method]
                met = m["accuracy"] >= TARGET or m["accepted"] == 0
                if fixed["accuracy"] < TARGET:
                    ok = met
                    why = f"fixed misses the target; {method} " + ("meets it" if ok else "misses it too")
                else:
                    ok = met and m["human"] < fixed["human"]
                    why = f"both meet it; {method} uses " + ("fewer" if ok else "more") + " human labels"
                verdicts.append((name, f"{rate:.0%} {noise}, sample {sample}", ok, why, rate, method))
                logger.info("thresholds %s @ %.0f%% %s, %s: %s", name, rate * 100, noise, sample, why)
    return lines, verdicts


def _sample_pair(
    y: np.ndarray, n: int, *, boost: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A reference sample and a disjoint current sample; class 0's weight in the current one is
    multiplied by ``boost`` (1 = no shift)."""
    ref = rng.choice(len(y), size=n, replace=False)
    rest = np.setdiff1d(np.arange(len(y)), ref)
    weight = np.where(y[rest] == 0, boost, 1.0)
    cur = rng.choice(rest, size=n, replace=False, p=weight / weight.sum())
    return ref, cur


def part_drift(data: dict, sizes: list[int], seeds: int) -> list[str]:
    lines = []
    for name, (X, y, kind, classes, probs) in data.items():
        names = np.asarray(classes, dtype=object)
        predicted = names[probs.argmax(axis=1)]
        confidence = probs.max(axis=1)
        inputs = input_columns(X, kind=kind)
        for n, boost in [(n, boost) for n in sizes for boost in (1.0, 1.5, 2.0)]:
            if 2 * n > len(y):
                continue
            flags = {"class": 0, "confidence": 0, "inputs": 0, "any": 0}
            share0 = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                ref, cur = _sample_pair(y, n, boost=boost, rng=rng)
                share0.append(float((y[cur] == 0).mean()))
                previous = pd.DataFrame({"predicted_label": predicted[ref], "confidence": confidence[ref]})
                stats = input_statistics(X[ref], kind=kind)
                result = compare_runs(
                    previous,
                    stats,
                    predicted=predicted[cur],
                    confidence=confidence[cur],
                    inputs={k: v[cur] for k, v in inputs.items()},
                    classes=classes,
                )
                for key in ("class", "confidence", "inputs"):
                    flags[key] += int(result[key]["drifted"])
                flags["any"] += int(result["drifted"])
            what = "no shift (false alarms)" if boost == 1.0 else f"class 0 weight x{boost:g} (power)"
            base = float((y == 0).mean())
            lines.append(
                f"| {name} | {n} | {what} | {base:.1%} -> {np.mean(share0):.1%} | "
                + " | ".join(f"{flags[k] / seeds:.3f}" for k in ("class", "confidence", "inputs", "any"))
                + " |"
            )
            logger.info("drift %s boost %.1f: %s", name, boost, flags)
    return lines


# -- screening --------------------------------------------------------------------------------

_FIRST = ["jane", "li", "omar", "ana", "kofi", "mia", "raj", "sven"]
_DOMAINS = ["example.org", "mail.example.com", "uni-example.edu", "example.co.uk"]


def _luhn_complete(prefix: str, length: int, rng: np.random.Generator) -> str:
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, length - len(prefix) - 1))
    for check in range(10):
        candidate = body + str(check)
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in moved)) % 97
    return f"{country}{check:02d}{bban}"


def personal_snippets(rng: np.random.Generator) -> dict[str, list[str]]:
    """Generated personal data, several formats per kind."""
    emails = [
        f"{rng.choice(_FIRST)}.{rng.choice(_FIRST)}{rng.integers(1, 99)}@{rng.choice(_DOMAINS)}"
        for _ in range(8)
    ]
    d = lambda k: "".join(str(x) for x in rng.integers(0, 10, k))  # noqa: E731
    phones = [
        f"+1 415 555 {d(4)}",
        f"(415) 555-{d(4)}",
        f"415-555-{d(4)}",
        f"+44 20 7946 {d(4)}",
        f"0044 20 7946 {d(4)}",
        f"415.555.{d(4)}",
        f"0{d(9)}",
    ]
    cards = []
    for prefix, length in (("4", 16), ("51", 16), ("37", 15)):
        number = _luhn_complete(prefix, length, rng)
        cards += [
            number,
            " ".join(number[i : i + 4] for i in range(0, length, 4)),
            "-".join(number[i : i + 4] for i in range(0, length, 4)),
        ]
    ibans = []
    for country, bban in (("DE", "37040044" + d(10)), ("GB", "WEST" + d(14)), ("FR", d(10) + "0" + d(12))):
        code = _iban(country, bban)
        ibans += [code, " ".join(code[i : i + 4] for i in range(0, len(code), 4))]
    return {"email": emails, "phone": phones, "card": cards, "iban": ibans}


def _score(flagged: set, planted: set, pre_existing: set) -> tuple[float, float, int]:
    recall = len(flagged & planted) / max(len(planted), 1)
    wrong = flagged - planted - pre_existing
    precision = len(flagged & planted) / max(len(flagged & planted) + len(wrong), 1)
    return recall, precision, len(flagged & pre_existing)


def part_screening(data: dict, seed: int, per_kind: int) -> list[str]:
    lines = []
    for name, (X, y, kind, classes, _) in data.items():
        rng = np.random.default_rng(seed)
        n = len(y)
        ids = np.array([f"i{i}" for i in range(n)], dtype=object)
        labels = np.asarray(classes, dtype=object)[y]
        # what the clean data already holds: real duplicates are not false alarms
        pre = {}
        for check, params in (
            ("exact_duplicates", {}),
            ("near_duplicates", {}),
            ("conflicting_duplicates", {}),
        ):
            found = screening_checks.get(check)(ids, X, labels, kind=kind, **params)
            pre[check] = set(found["item_id"])
        pre_pii = set(screening_checks.get("personal_data")(ids, X, labels, kind=kind)["item_id"])

        sources = rng.choice(n, size=3 * per_kind, replace=False)
        exact_src, near_src, conflict_src = np.split(sources, 3)
        new_X, new_labels, planted = [], [], {"exact": [], "near": [], "conflict": []}
        for which, src in (("exact", exact_src), ("near", near_src), ("conflict", conflict_src)):
            for i in src:
                x = X[i]
                if kind == "text":
                    x = f"  {x.upper()} " if which in ("exact", "conflict") else f"{x} indeed"
                elif which == "near":  # two pixels one grey level off
                    x = x.copy()
                    x[rng.choice(len(x), size=2, replace=False)] += rng.choice([-1.0, 1.0], size=2)
                new_X.append(x)
                lab = (
                    labels[i]
                    if which != "conflict"
                    else classes[(classes.index(labels[i]) + 1) % len(classes)]
                )
                new_labels.append(lab)
                planted[which].append(f"p{which}{len(planted[which])}")
        all_ids = np.r_[ids, np.array(planted["exact"] + planted["near"] + planted["conflict"], dtype=object)]
        all_X = np.r_[X, np.array(new_X, dtype=object)] if kind == "text" else np.vstack([X, np.array(new_X)])
        all_labels = np.r_[labels, np.array(new_labels, dtype=object)]
        conflict_pairs = set(planted["conflict"]) | {ids[i] for i in conflict_src}

        rows = []
        t = time.perf_counter()
        found = set(
            screening_checks.get("exact_duplicates")(all_ids, all_X, all_labels, kind=kind)["item_id"]
        )
        exact_planted = set(planted["exact"]) | set(planted["conflict"])  # conflicts are exact copies too
        rows.append(
            (
                "exact_duplicates",
                "exact copies",
                *_score(found, exact_planted, pre["exact_duplicates"]),
                time.perf_counter() - t,
            )
        )
        t = time.perf_counter()
        found = set(screening_checks.get("near_duplicates")(all_ids, all_X, all_labels, kind=kind)["item_id"])
        near_planted = set(planted["near"]) | exact_planted
        rows.append(
            (
                "near_duplicates",
                "near + exact copies",
                *_score(found, near_planted, pre["near_duplicates"]),
                time.perf_counter() - t,
            )
        )
        t = time.perf_counter()
        found = set(
            screening_checks.get("conflicting_duplicates")(all_ids, all_X, all_labels, kind=kind)["item_id"]
        )
        rows.append(
            (
                "conflicting_duplicates",
                "copies with another label (both members)",
                *_score(found, conflict_pairs, pre["conflicting_duplicates"]),
                time.perf_counter() - t,
            )
        )

        if kind == "text":
            snippets = personal_snippets(rng)
            pii_X = np.array(X, dtype=object).copy()
            targets = rng.choice(n, size=4 * per_kind, replace=False)
            planted_kind = {}
            for j, (pii_kind, values) in enumerate(snippets.items()):
                chosen = targets[j * per_kind : (j + 1) * per_kind]
                for i in chosen:
                    value = values[rng.integers(0, len(values))]
                    pii_X[i] = f"{pii_X[i]} contact: {value}" if rng.random() < 0.5 else f"{value} {pii_X[i]}"
                planted_kind[pii_kind] = {ids[i] for i in chosen}
            t = time.perf_counter()
            found_frame = screening_checks.get("personal_data")(ids, pii_X, labels, kind=kind)
            seconds = time.perf_counter() - t
            found = set(found_frame["item_id"])
            all_planted = set().union(*planted_kind.values())
            for pii_kind, items in planted_kind.items():
                kind_found = set(found_frame.loc[found_frame["reason"].str.contains(pii_kind), "item_id"])
                rows.append(
                    (
                        "personal_data",
                        pii_kind,
                        len(kind_found & items) / len(items),
                        float("nan"),
                        0,
                        float("nan"),
                    )
                )
            rows.append(("personal_data", "all kinds", *_score(found, all_planted, pre_pii), seconds))
        for check, what, recall, precision, pre_n, seconds in rows:
            p = "—" if np.isnan(precision) else f"{precision:.3f}"
            s = "" if np.isnan(seconds) else f"{seconds:.1f}"
            lines.append(f"| {name} | {check} | {what} | {recall:.3f} | {p} | {pre_n} | {s} |")
            logger.info("screening %s %s %s: recall %.3f precision %s", name, check, what, recall, p)
    return lines


def run(
    datasets: list[str],
    rates: list[float],
    seeds: list[int],
    *,
    samples: list[int],
    drift_n: list[int],
    drift_seeds: int,
    per_kind: int,
) -> str:
    data = {}
    for name in datasets:
        X, y, kind, classes = load_dataset(name)
        t = time.perf_counter()
        probs = autolabeler_probs(X, y, kind)
        logger.info("%s: autolabeler probabilities in %.1f s", name, time.perf_counter() - t)
        data[name] = (X, y, kind, classes, probs)

    threshold_lines, verdicts = part_thresholds(data, rates, seeds, samples)
    drift_lines = part_drift(data, drift_n, drift_seeds)
    screening_lines = part_screening(data, seeds[0], per_kind)

    command = "python -m bench.validation " + " ".join(sys.argv[1:])
    # the target is stated for 5-20% planted noise; the 0% rows are context
    summary = []
    for method in METHODS[1:]:
        mine = [v for v in verdicts if v[5] == method]
        counted = [v for v in mine if v[4] > 0]
        clean = [v for v in mine if v[4] == 0]
        summary.append(
            f"- **{method}**: met in {sum(v[2] for v in counted)} of {len(counted)} planted-noise settings "
            f"(5-20%); without planted noise (context, outside the target) as well or better in "
            f"{sum(v[2] for v in clean)} of {len(clean)}."
        )
    text = "\n".join(
        [
            "# Validation gates: threshold tuning, drift, screening",
            "",
            f"- command: `{command.strip()}` (from the repo root, `.venv/bin/python`)",
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {machine()}",
            f"- seeds: {', '.join(map(str, seeds))} (threshold figures are means over seeds); drift: "
            f"{drift_seeds} seeds per setting, runs of {' or '.join(map(str, drift_n))} items each",
            "",
            f"## (a) Threshold tuning: target accuracy {TARGET}, tuned per-class vs fixed global {FIXED}",
            "",
            "Autolabeler: 5-fold logistic regression; planted noise: the share of machine labels switched "
            "to another class with their confidence kept ('uniform': any item; 'class': items of the first "
            "half of the classes, as the next class). Tuned: people check a random sample of the given size "
            "(counted as human labels), `tune_thresholds` on it; people label every item not "
            "auto-accepted (review mode none). Tuned + review: what the flow then does in review mode, "
            "with its own functions: a probe of each class nothing certified (`tasks/probe.py`), the "
            "route (probes, then a 5% audit sample, at least `labels_needed`), the probes verified, the "
            "machine-label gate on the audit sample with the thresholds' evidence; people answer right. "
            "'model acc' is the autolabeler's accuracy before noise.",
            "",
            "| dataset | model acc | noise | method | checked sample | auto-accepted | accepted acc "
            "| human labels | target met |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|",
            *threshold_lines,
            "",
            "Target (tuned meets the target where fixed misses it, or uses fewer human labels where both "
            "meet it):",
            "",
            *summary,
            "",
            "Tuned thresholds are certified by fixed-sequence testing (one-sided 95% lower bound per "
            "class, exact); "
            "see `tasks/gate.py`.",
            "",
            *[
                f"- {name} @ {noise}, {method}: {'met' if ok else '**missed**'} — {why}"
                for name, noise, ok, why, _, method in verdicts
            ],
            "",
            "## (b) Drift: share of runs flagged",
            "",
            "Chi-square p < 0.01 on predicted classes; PSI > 0.2 (previous run's deciles) on confidence and "
            "on input statistics (text: characters and words; digits: each of the 64 pixels, worst counts).",
            "",
            "| dataset | items per run | current run | class 0 share (all -> run) | class test "
            "| confidence PSI | input PSI | any |",
            "|---|---:|---|---|---:|---:|---:|---:|",
            *drift_lines,
            "",
            "## (c) Screening: recall and precision on planted items",
            "",
            f"{per_kind} planted items per kind. Precision counts flags on planted items against flags on "
            "other items; flags on items the clean data already duplicates are counted apart (pre-existing) "
            "and not as errors.",
            "",
            "| dataset | check | planted | recall | precision | pre-existing flagged | seconds |",
            "|---|---|---|---:|---:|---:|---:|",
            *screening_lines,
            "",
        ]
    )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,rotten_tomatoes")
    parser.add_argument("--rates", default="0,0.05,0.1,0.2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--samples", default="300,900", help="Sizes of the human-checked tuning sample.")
    parser.add_argument("--drift-n", default="500,2000", help="Items per run (skipped if 2n > data).")
    parser.add_argument("--drift-seeds", type=int, default=200)
    parser.add_argument("--per-kind", type=int, default=50, help="Planted items per screening kind.")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("labelgate.progress").setLevel(logging.WARNING)  # a line per model fitted
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    text = run(
        [d for d in args.datasets.split(",") if d],
        [float(r) for r in args.rates.split(",")],
        [int(s) for s in args.seeds.split(",")],
        samples=[int(v) for v in args.samples.split(",")],
        drift_n=[int(v) for v in args.drift_n.split(",")],
        drift_seeds=args.drift_seeds,
        per_kind=args.per_kind,
    )
    logger.info("wrote %s", write_results(text, args.out))


if __name__ == "__main__":
    main()
