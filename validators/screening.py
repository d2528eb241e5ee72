"""Screening: checks on the items themselves, run before any label is trusted.

Every check is a pure function registered in :data:`screening_checks` under the name a spec uses
(``validation.checks[].name``). All share one signature::

    check(ids, X, labels, *, kind, **params) -> pandas.DataFrame  # columns: item_id, reason

- ``ids``: (n,) str item ids; ``X``: (n,) str for ``kind="text"``, (n, d) float for
  ``kind="tabular"``; ``labels``: (n,) given class names, ``None`` where an item has no label.
- The result has one row per flagged item (an item appears at most once per check) and a reason a
  person can read. Reasons never repeat personal data: they say what kind was found and where.

The spec decides what a finding does (``quarantine``, ``block`` or ``report``); see
:data:`DEFAULT_CHECKS` for what runs when the spec says nothing.

Near-duplicates and outliers compare items with their nearest neighbours (scikit-learn
``NearestNeighbors``, brute force on TF-IDF for text), which costs O(n^2): they are opt-in and
meant for sets up to some tens of thousands of items. cleanlab's ``Datalab`` has near-duplicate
and outlier issue types, but it needs the ``cleanlab[datalab]`` extra (Hugging Face ``datasets``),
which is not a dependency here; its near-duplicate rule (a neighbour far closer than the median
neighbour distance) is the rule :func:`near_duplicates` uses for tabular data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors

from labelgate.errors import preview
from validators.registry import Registry

screening_checks = Registry("screening check")

FINDING_COLUMNS = ["item_id", "reason"]

#: What runs when the spec has no ``validation.checks``: cheap checks (hashing and regular
#: expressions, O(n)) whose findings are unambiguous. name -> action.
DEFAULT_CHECKS: dict[str, str] = {
    "degenerate_inputs": "quarantine",
    "exact_duplicates": "report",
    "conflicting_duplicates": "quarantine",
    "personal_data": "quarantine",
}


def findings(ids: Sequence[str], reasons: Sequence[str]) -> pd.DataFrame:
    """The common result frame: ``item_id, reason``, one row per flagged item, first reason wins."""
    frame = pd.DataFrame({"item_id": [str(i) for i in ids], "reason": list(reasons)}, columns=FINDING_COLUMNS)
    return frame.drop_duplicates("item_id").reset_index(drop=True)


# -- duplicate groups ---------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Lowercase, collapse whitespace, trim: the key under which texts count as exact duplicates."""
    return " ".join(str(text).lower().split())


def _exact_keys(X: np.ndarray, kind: str) -> pd.Series:
    if kind == "text":
        return pd.Series([normalise_text(t) for t in X])
    return pd.Series(
        pd.util.hash_pandas_object(pd.DataFrame(np.asarray(X, dtype=float)), index=False).to_numpy()
    )


def _first_of_group(keys: pd.Series) -> np.ndarray:
    """For each item, the position of the first item with the same key."""
    codes, uniques = pd.factorize(keys)
    first = np.zeros(len(uniques), dtype=int)
    first[codes[::-1]] = np.arange(len(keys))[::-1]
    return first[codes]


def _groups_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components (union-find) over index pairs; returns a group id per item."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def _text_vectors(X: np.ndarray):
    vectorizer = TfidfVectorizer(lowercase=True, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        return vectorizer.fit_transform([str(t) for t in X])
    except ValueError:  # no token at all
        return None


def standardise(X: np.ndarray) -> np.ndarray:
    """Centre each feature and divide by its standard deviation, floored at the median one, so a
    near-constant feature (a border pixel) cannot blow up a tiny difference."""
    X = np.asarray(X, dtype=float)
    std = X.std(axis=0)
    floor = float(np.median(std[std > 0])) if (std > 0).any() else 1.0
    return (X - X.mean(axis=0)) / np.maximum(std, floor)


def similar_pairs(
    X: np.ndarray, *, kind: str, similarity: float = 0.9, tolerance: float = 0.15
) -> np.ndarray:
    """Index pairs ``(i, j)``, i < j, of near-duplicate items. Returns (m, 2) ints.

    text: cosine similarity of word TF-IDF vectors >= ``similarity``.
    tabular: Euclidean distance on standardised features <= ``tolerance`` x the median distance
    of an item to its nearest neighbour (Datalab's rule), or exactly equal.
    """
    n = len(X)
    if n < 2:
        return np.zeros((0, 2), dtype=int)
    k = min(6, n)
    if kind == "text":
        vectors = _text_vectors(X)
        if vectors is None:
            return np.zeros((0, 2), dtype=int)
        dist, idx = (
            NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(vectors).kneighbors()
        )
        close = dist <= 1.0 - similarity + 1e-9
    else:
        Z = standardise(X)
        dist, idx = NearestNeighbors(n_neighbors=k).fit(Z).kneighbors()
        scale = float(np.median(dist[:, 0])) if dist.size else 0.0
        close = (dist <= tolerance * scale) | (dist == 0)
    rows, cols = np.nonzero(close)
    pairs = np.stack([rows, idx[rows, cols]], axis=1)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=int)


@screening_checks.register("exact_duplicates")
def exact_duplicates(ids: np.ndarray, X: np.ndarray, labels: np.ndarray, *, kind: str) -> pd.DataFrame:
    """Items whose input equals an earlier item's (text: after lowercasing and collapsing
    whitespace; tabular: every feature equal). The first of each group is not flagged."""
    keys = _exact_keys(X, kind)
    first = _first_of_group(keys)
    later = np.flatnonzero(keys.duplicated(keep="first").to_numpy())
    return findings(ids[later], [f"exact duplicate of item {ids[first[i]]}" for i in later])


@screening_checks.register("near_duplicates")
def near_duplicates(
    ids: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    *,
    kind: str,
    similarity: float = 0.9,
    tolerance: float = 0.15,
) -> pd.DataFrame:
    """Items nearly equal to another item (see :func:`similar_pairs` for ``similarity`` and
    ``tolerance``); exact duplicates count too. The first item of each group is not flagged."""
    pairs = similar_pairs(X, kind=kind, similarity=similarity, tolerance=tolerance)
    if not len(pairs):
        return findings([], [])
    group = _groups_from_pairs(len(ids), pairs)
    flagged = [i for i in np.unique(pairs) if group[i] != i]
    what = f"cosine >= {similarity}" if kind == "text" else f"distance <= {tolerance} x median neighbour"
    return findings(ids[flagged], [f"near-duplicate of item {ids[group[i]]} ({what})" for i in flagged])


@screening_checks.register("conflicting_duplicates")
def conflicting_duplicates(
    ids: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    *,
    kind: str,
    similarity: float = 1.0,
    tolerance: float = 0.15,
) -> pd.DataFrame:
    """Labeled items that duplicate each other but carry different labels; every labeled member
    of such a group is flagged (which label is right is for a person to say).

    ``similarity`` 1.0 (default) means exact duplicates (as :func:`exact_duplicates`); below 1
    near-duplicates count as well (as :func:`near_duplicates`)."""
    n = len(ids)
    if similarity >= 1.0:
        group = _first_of_group(_exact_keys(X, kind))
    else:
        group = _groups_from_pairs(n, similar_pairs(X, kind=kind, similarity=similarity, tolerance=tolerance))
    frame = pd.DataFrame({"group": group, "label": pd.Series(labels, dtype=object)})
    labeled = frame[frame["label"].notna()]
    distinct = labeled.groupby("group")["label"].nunique()
    bad_groups = set(distinct.index[distinct > 1])
    out_ids, reasons = [], []
    for _, members in labeled[labeled["group"].isin(bad_groups)].groupby("group"):
        described = preview([f"{ids[i]}={lab}" for i, lab in members["label"].items()])
        for i, lab in members["label"].items():
            out_ids.append(ids[i])
            reasons.append(f"duplicates disagree on the label ({described}); this one is {lab!r}")
    return findings(out_ids, reasons)


# -- outliers and degenerate inputs ------------------------------------------------------------


def _robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD), per column; a column without spread gives 0."""
    median = np.median(values, axis=0)
    mad = 1.4826 * np.median(np.abs(values - median), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (values - median) / mad
    return np.where(mad > 0, z, 0.0)


def text_shape(X: np.ndarray) -> np.ndarray:
    """(n, 3) per text: log(1 + characters), share of characters that are not letters or spaces,
    mean word length."""
    out = np.zeros((len(X), 3))
    for i, text in enumerate(X):
        text = str(text)
        words = text.split()
        letters = sum(ch.isalpha() or ch.isspace() for ch in text)
        out[i] = (
            np.log1p(len(text)),
            1 - letters / len(text) if text else 0.0,
            np.mean([len(w) for w in words]) if words else 0.0,
        )
    return out


@screening_checks.register("outliers")
def outliers(
    ids: np.ndarray, X: np.ndarray, labels: np.ndarray, *, kind: str, z: float = 6.0, n_neighbors: int = 5
) -> pd.DataFrame:
    """Items far from the rest, by a robust z-score (median and MAD) above ``z``.

    tabular: of the mean distance to the ``n_neighbors`` nearest items (standardised features);
    text: of the text's shape (:func:`text_shape`: length, share of non-letters, word length) —
    a text unlike the others in form, such as a log dump among reviews.
    """
    n = len(ids)
    if n <= n_neighbors + 1:
        return findings([], [])
    if kind == "text":
        shape = text_shape(X)
        scores = _robust_z(shape)
        worst = np.abs(scores).argmax(axis=1)
        peak = np.abs(scores)[np.arange(n), worst]
        names = np.array(["length", "share of non-letters", "word length"])
        flagged = np.flatnonzero(peak > z)
        return findings(
            ids[flagged], [f"outlier: {names[worst[i]]} robust z {peak[i]:.1f} > {z}" for i in flagged]
        )
    Z = standardise(X)
    dist, _ = NearestNeighbors(n_neighbors=n_neighbors).fit(Z).kneighbors()
    score = _robust_z(dist.mean(axis=1)[:, None])[:, 0]
    flagged = np.flatnonzero(score > z)
    return findings(
        ids[flagged], [f"outlier: distance to its neighbours, robust z {score[i]:.1f} > {z}" for i in flagged]
    )


_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _distinct_alnum(text: str, enough: int) -> int:
    """Distinct letters and digits in ``text`` (case-folded), counted exactly only when the
    ASCII ones alone are fewer than ``enough`` (set operations in C first: fast on long texts)."""
    chars = set(text.lower())
    ascii_count = len(chars & _ASCII_ALNUM)
    if ascii_count >= enough:
        return ascii_count
    return sum(ch.isalnum() for ch in chars)


@screening_checks.register("degenerate_inputs")
def degenerate_inputs(
    ids: np.ndarray, X: np.ndarray, labels: np.ndarray, *, kind: str, min_distinct_chars: int = 2
) -> pd.DataFrame:
    """Inputs with nothing to label. text: fewer than ``min_distinct_chars`` distinct letters or
    digits ("", "!!!", "aaaa"); tabular: every feature the same value (e.g. an all-zero row)."""
    if kind == "text":
        flagged = [
            i for i, t in enumerate(X) if _distinct_alnum(str(t), min_distinct_chars) < min_distinct_chars
        ]
        why = f"degenerate input: fewer than {min_distinct_chars} distinct letters or digits"
    else:
        values = np.asarray(X, dtype=float)
        flagged = np.flatnonzero(np.ptp(values, axis=1) == 0) if values.size else []
        why = "degenerate input: every feature has the same value"
    return findings(ids[list(flagged)], [why] * len(flagged))


# -- personal data ------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().-]{7,20}\d(?!\w)")
_MAYBE_PERSONAL = re.compile(r"@|\d(?:[ ().-]{0,3}\d){8}|[A-Z]{2}\d{2}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    code = text.replace(" ", "").upper()
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _find_cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(m.span())
    return spans


def _find_phones(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans = []
    for m in _PHONE.finditer(text):
        start, end = m.span()
        if any(start < b and a < end for a, b in taken):
            continue
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        international = raw.startswith(("+", "00"))
        grouped = bool(re.search(r"[ ().-]", raw))
        if 9 <= len(digits) <= 15 and (international or grouped or len(digits) >= 10):
            spans.append((start, end))
    return spans


def _find_ibans(text: str) -> list[tuple[int, int]]:
    """IBAN-shaped runs that pass mod 97; a run that swallowed a following word or number is
    cut back, one character at a time, to its longest valid start."""
    spans = []
    for m in _IBAN.finditer(text):
        start, end = m.span()
        while end - start >= 15:
            if text[end - 1] != " " and iban_valid(text[start:end]):
                spans.append((start, end))
                break
            end -= 1
    return spans


PERSONAL_DATA_KINDS: dict[str, Callable[[str], list[tuple[int, int]]]] = {
    "email": lambda text: [m.span() for m in _EMAIL.finditer(text)],
    "card": _find_cards,
    "iban": lambda text: _find_ibans(text),
}
"""Kinds of personal data that :func:`personal_data` finds (plus ``phone``)."""


def _maybe_personal(X: np.ndarray) -> np.ndarray:
    """(n,) bool: texts with an '@', a run of 9 digits or an IBAN start — a cheap pre-filter
    (vectorised with Arrow's regular expressions when pyarrow is there) before the exact patterns."""
    texts = pd.Series(X, dtype=object).astype(str)
    try:
        arrow = texts.astype("string[pyarrow]")
        return arrow.str.contains(_MAYBE_PERSONAL.pattern, regex=True).to_numpy(dtype=bool)
    except (ImportError, TypeError, ValueError):
        return np.array([bool(_MAYBE_PERSONAL.search(t)) for t in texts], dtype=bool)


def find_personal_data(text: str, *, kinds: Sequence[str] = ("email", "phone", "card", "iban")) -> list[str]:
    """``["email at 10-29", ...]``: each kind found in ``text`` and its character span.

    Card numbers must pass the Luhn check and IBANs the mod-97 check; a phone number is 9 to 15
    digits that start with + or 00, or are grouped by spaces, dots, dashes or brackets, or are 10
    or more digits long; digits that form a valid card number are not also counted as a phone.
    """
    text = str(text)
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for kind in ("email", "card", "iban"):
        if kind in kinds:
            spans = PERSONAL_DATA_KINDS[kind](text)
            taken += spans
            found += [f"{kind} at characters {a}-{b}" for a, b in spans]
    if "phone" in kinds:
        # digits inside an e-mail address or an IBAN-shaped code (valid or not) are no phone
        taken += [m.span() for pattern in (_EMAIL, _IBAN) for m in pattern.finditer(text)]
        found += [f"phone at characters {a}-{b}" for a, b in _find_phones(text, taken)]
    return found


@screening_checks.register("personal_data")
def personal_data(
    ids: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    *,
    kind: str,
    kinds: Sequence[str] = ("email", "phone", "card", "iban"),
) -> pd.DataFrame:
    """Texts holding personal data: ``kinds`` among email, phone, card, iban. Tabular inputs are
    numbers and are not searched. The reason names the kind and the span, never the value."""
    unknown = sorted(set(kinds) - {*PERSONAL_DATA_KINDS, "phone"})
    if unknown:
        from labelgate.errors import SpecError

        raise SpecError(f"personal_data: unknown kind(s) {unknown}; valid kinds: card, email, iban, phone")
    if kind != "text":
        return findings([], [])
    out_ids, reasons = [], []
    for i in np.flatnonzero(_maybe_personal(X)):
        item, text = ids[i], X[i]
        found = find_personal_data(text, kinds=kinds)
        if found:
            out_ids.append(item)
            reasons.append("personal data: " + "; ".join(found))
    return findings(out_ids, reasons)


# -- running a selection of checks --------------------------------------------------------------

ACTIONS = ("quarantine", "block", "report")
"""What a finding does: ``quarantine`` the item (kept, with the reason), ``block`` the job
(nothing is published), or only ``report`` it."""

SCREENING_COLUMNS = ["item_id", "check", "action", "reason"]


def run_screening(
    ids: np.ndarray,
    X: np.ndarray,
    labels: np.ndarray,
    *,
    kind: str,
    checks: Sequence[tuple[str, str, dict]],
) -> pd.DataFrame:
    """Run ``checks`` — ``(name, action, params)`` triples — and stack their findings.

    Returns ``item_id, check, action, reason``, one row per (check, flagged item), in check order.
    """
    frames = []
    for name, action, params in checks:
        found = screening_checks.get(name)(ids, X, labels, kind=kind, **params)
        frames.append(found.assign(check=name, action=action))
    if not frames:
        return pd.DataFrame(columns=SCREENING_COLUMNS)
    return pd.concat(frames, ignore_index=True)[SCREENING_COLUMNS]
