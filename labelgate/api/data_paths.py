"""Which files a job submitted over HTTP may read: only those below the configured data roots.

A spec names files (``dataset.path``, ``review.gold_path``, ``review.simulate.truth_path``).
From the CLI they are the user's own business; from the API they would let any caller make
the worker read any file the worker can (``/etc/passwd``, another team's data, a cloud
metadata URL). So the API resolves each path and refuses the job, with 400, unless the path
lies below one of ``LABELGATE_DATA_ROOTS``:

- a relative path is taken below the first root;
- local paths are compared after resolving ``..`` and symlinks (``os.path.realpath``);
- URIs (``s3://``, ``gs://``, ...) must start with a root that is a URI of the same scheme and
  contain no ``..`` segment; ``file://`` URIs are local paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from labelgate.errors import SpecError
from labelgate.spec import LabelingJobSpec


def _is_uri(value: str) -> bool:
    return "://" in value


def _local(value: str) -> str:
    return urlsplit(value).path if value.startswith("file://") else value


def resolve_data_path(value: str, roots: list[str], *, field: str) -> str:
    """``value`` made absolute, if it lies below one of ``roots``; else :class:`SpecError`
    naming ``field`` (the value itself is echoed, the roots are not)."""
    refused = SpecError(f"{field}: {value!r} is outside the data folders this API may read")
    if not roots:
        raise refused
    if _is_uri(value) and not value.startswith("file://"):
        parts = urlsplit(value)
        if ".." in parts.path.split("/"):
            raise refused
        for root in roots:
            if _is_uri(root) and not root.startswith("file://"):
                prefix = root if root.endswith("/") else root + "/"
                if value.startswith(prefix):
                    return value
        raise refused
    local_roots = [os.path.realpath(_local(r)) for r in roots if not _is_uri(r) or r.startswith("file://")]
    if not local_roots:
        raise refused
    path = _local(value)
    if "\x00" in path:
        raise refused
    absolute = path if os.path.isabs(path) else os.path.join(local_roots[0], path)
    real = os.path.realpath(absolute)
    for root in local_roots:
        if Path(real).is_relative_to(root):
            return real
    raise refused


def confine_spec(spec: LabelingJobSpec, roots: list[str]) -> LabelingJobSpec:
    """A copy of ``spec`` whose file paths are absolute and inside ``roots`` (else SpecError).

    Every string field whose name ends in ``path`` is a file path, wherever it sits in the spec
    (``dataset.path``, ``review.gold_path``, ``review.simulate.truth_path``, and any added later).
    """

    def confine(node: object, where: str) -> object:
        if isinstance(node, dict):
            return {
                key: (
                    resolve_data_path(value, roots, field=f"{where}{key}")
                    if isinstance(value, str) and str(key).endswith("path")
                    else confine(value, f"{where}{key}.")
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [confine(value, f"{where[:-1]}[{i}].") for i, value in enumerate(node)]
        return node

    return LabelingJobSpec.model_validate(confine(spec.model_dump(mode="json", by_alias=True), ""))
