"""A named registry of checks, so a spec can select checks by name.

A check is a pure function. Registering it under a name makes it selectable; an unknown name
fails with the list of valid names (cleanlab's ``issue_manager_factory`` does the same).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from labelgate.errors import SpecError

F = TypeVar("F", bound=Callable)


class Registry:
    """Named callables of one kind (e.g. dataset checks)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return decorate

    def get(self, name: str) -> Callable:
        try:
            return self._items[name]
        except KeyError:
            raise SpecError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)
