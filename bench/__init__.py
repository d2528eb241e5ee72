"""Benchmarks for labelgate (not tests). Run them from the repo root as modules."""

from __future__ import annotations

import sys
from pathlib import Path


def write_results(text: str, out: str | Path) -> Path:
    """Print a benchmark's markdown table and write it to ``out`` (its folder made if needed)."""
    sys.stdout.write(text)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
