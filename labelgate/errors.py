"""One error hierarchy for labelgate.

Every message names the bad value and where it is (file, column, row ids), so a user can fix the
input without reading a traceback. HTTP status codes belong to the API layer, not here.
"""

from __future__ import annotations

from collections.abc import Iterable


class LabelgateError(Exception):
    """Base class of every error labelgate raises on purpose."""


class SpecError(LabelgateError, ValueError):
    """The job spec is invalid: unknown keys, wrong types, unknown check or model names."""


class DataError(LabelgateError, ValueError):
    """The dataset does not match the spec: unreadable file, missing columns, bad rows."""


class StoreError(LabelgateError):
    """The label store cannot be read or written, or a version does not exist."""


class RightsError(LabelgateError):
    """The data's rights do not allow the requested use (for example model training)."""


class GateError(LabelgateError):
    """A validation gate refused to publish: a blocking screening finding, or machine labels whose
    checked accuracy is under the target when the spec says to stop."""


class ServiceError(LabelgateError):
    """An external service (Label Studio, Prefect) is down or answered with an error."""


def preview(values: Iterable[object], *, limit: int = 5) -> str:
    """Render the first ``limit`` values for an error message, with a count of the rest.

    >>> preview([3, 7, 9, 11, 12, 15, 20])
    '3, 7, 9, 11, 12 (and 2 more)'
    """
    values = list(values)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown
