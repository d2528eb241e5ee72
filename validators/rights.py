"""Data rights: may these sources be published as training labels?

A label set is training data, so every source it is built from must allow model training on the
day of the publish. :func:`rights_problems` is the pure check; :func:`check_rights` raises one
:class:`RightsError` that names every offending source.

Decisions (see README, "Validation"):

- A source blocks when its ``allowed_uses`` lack ``training``, when its licence is in
  :data:`FORBIDDEN_LICENCES` (licences or markers that reserve or refuse AI/ML training), or when
  its rights expired before the publish date (``expires`` is the last valid day).
- NC (non-commercial) and ND (no derivatives) Creative Commons licences do not block by
  themselves: training on NC data is allowed for non-commercial work, and whether a model is a
  derivative work is not settled. ``allowed_uses`` is where a data owner says "no training".
- Licence names compare case-insensitively, ignoring spaces, dashes and underscores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from labelgate.errors import RightsError

FORBIDDEN_LICENCES = frozenset(
    {
        "no-ai-training",
        "no-ml-training",
        "noai",
        "no-training",
        "all-rights-reserved",
        "proprietary",
        "unknown",
        "unlicensed",
    }
)
"""Licences (normalised, see :func:`normalise_licence`) under which a publish is refused."""

REQUIRED_USE = "training"


def normalise_licence(licence: str) -> str:
    """``"All Rights_Reserved "`` -> ``"all-rights-reserved"``."""
    return re.sub(r"[\s_-]+", "-", licence.strip().lower()).strip("-")


def _field(source: Any, name: str) -> Any:
    return source.get(name) if isinstance(source, dict) else getattr(source, name)


def rights_problems(
    sources: Sequence[Any],
    *,
    on: date,
    use: str = REQUIRED_USE,
    forbidden: frozenset[str] = FORBIDDEN_LICENCES,
) -> list[str]:
    """Why ``sources`` may not be used for ``use`` on day ``on``; empty when they may.

    sources: rights of every source, each a ``RightsSpec`` or a mapping with ``license``,
    ``source``, ``allowed_uses`` and ``expires`` (a ``date``, an ISO string or None).
    """
    if not sources:
        return ["no rights given: a label set needs the licence and source of its data to be published"]
    problems = []
    for n, src in enumerate(sources, start=1):
        where = f"source {n} ({_field(src, 'source')!r}, licence {_field(src, 'license')!r})"
        licence = normalise_licence(str(_field(src, "license") or ""))
        uses = [str(u).strip().lower() for u in (_field(src, "allowed_uses") or [])]
        expires = _field(src, "expires")
        if isinstance(expires, str):
            expires = date.fromisoformat(expires)
        if not licence:
            problems.append(f"{where}: no licence")
        elif licence in forbidden:
            problems.append(
                f"{where}: the licence forbids {use} (refused licences: {', '.join(sorted(forbidden))})"
            )
        if use not in uses:
            problems.append(f"{where}: allowed_uses {uses} do not include {use!r}")
        if expires is not None and expires < on:
            problems.append(
                f"{where}: the rights expired on {expires.isoformat()} (today is {on.isoformat()})"
            )
    return problems


def check_rights(sources: Sequence[Any], *, on: date | None = None, use: str = REQUIRED_USE) -> None:
    """Raise :class:`RightsError` listing every problem :func:`rights_problems` finds."""
    problems = rights_problems(sources, on=on or date.today(), use=use)
    if problems:
        raise RightsError(
            f"the data's rights do not allow {use}; nothing is published:\n  " + "\n  ".join(problems)
        )
