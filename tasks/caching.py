"""Cache keys for stages, so a rerun after a crash does not redo finished work.

A stage's result is reused when the job spec, the input data and the code
(:func:`labelgate.code_version.code_version`) are unchanged.
The key is built from the spec hash and the data fingerprint rather than by hashing the (large)
arrays the stage receives.

Only ``autolabel`` and ``audit`` are cached (their results persisted). Every other task says
``cache_policy=NO_CACHE``: Prefect's default policy hashes a task's inputs (whole data frames here)
to key a result that is never persisted, about 0.3 s per 100k-item run for nothing.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from prefect.cache_policies import CacheKeyFnPolicy, CachePolicy

from labelgate.code_version import code_version
from labelgate.settings import get_settings

CACHE_FOR = timedelta(days=7)


def _job_key(stage: str):
    def key(context, parameters) -> str:
        spec = parameters["spec"]
        dataset = parameters.get("dataset")
        fingerprint = dataset.fingerprint if dataset is not None else "-"
        store = hashlib.sha256(get_settings().store.encode()).hexdigest()[:8]
        return f"{stage}-{spec.spec_hash()}-{fingerprint}-{store}-{code_version()}"

    return key


def by_job(stage: str) -> CachePolicy:
    """Cache policy for ``stage``: spec hash + data fingerprint + store + the code's version (which
    covers the task's own source)."""
    return CacheKeyFnPolicy(cache_key_fn=_job_key(stage))
