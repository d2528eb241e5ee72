"""The version of the code that made a result: the package version plus a hash of its source.

``labelgate.__version__`` changes only on a release; a result made by edited code must not pass
for one made by the code before the edit (a rerun would reuse cached stages and report the label
set unchanged). The hash covers every ``.py`` file of the four packages that make label sets.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

import labelgate

PACKAGES = ("labelgate", "flows", "tasks", "validators")


def source_hash(folders: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 (hex) of the path and bytes of every ``.py`` file under each ``(name, folder)``."""
    digest = hashlib.sha256()
    for name, root in folders:
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _package_folders() -> list[tuple[str, Path]]:
    out = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        folders = (spec.submodule_search_locations or []) if spec is not None else []
        out += [(package, Path(folder)) for folder in folders]
    return out


@functools.cache
def code_version() -> str:
    """``"<package version>+<12 hex digits of source_hash>"`` for the installed packages."""
    return f"{labelgate.__version__}+{source_hash(_package_folders())[:12]}"
