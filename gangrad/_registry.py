"""A name -> class registry shared by estimators and tasks.

Built-ins are a plain dict in the package's ``__init__``; outside packages add entries
through an entry-point group (``gangrad.estimators``, ``gangrad.tasks``) or, in a session,
with :meth:`Registry.register`. ``create`` checks hyper-parameter names against the class
signature before constructing, so a typo is reported with the accepted names.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["HyperParameter", "Registry", "UnknownKeyError", "hyperparameters"]


class UnknownKeyError(KeyError):
    """An unknown registry key; the message lists the available keys."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class HyperParameter:
    name: str
    default: Any
    annotation: str

    def __str__(self) -> str:
        default = "required" if self.default is inspect.Parameter.empty else repr(self.default)
        return f"{self.name}={default}"


def hyperparameters(cls: type) -> list[HyperParameter]:
    """The constructor's keyword arguments: the hyper-parameters, with their defaults."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [
        HyperParameter(p.name, p.default, str(p.annotation))
        for p in params
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


class Registry(Generic[T]):
    """Registry keys -> classes, merged from built-ins, entry points and :meth:`register`."""

    def __init__(self, kind: str, builtins: Mapping[str, type[T]], group: str) -> None:
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins)
        self._registered: dict[str, type[T]] = {}
        self._plugins: dict[str, type[T]] | None = None

    def _load_plugins(self) -> dict[str, type[T]]:
        if self._plugins is None:
            found: dict[str, type[T]] = {}
            for ep in metadata.entry_points(group=self.group):
                if ep.name in self._builtins:
                    warnings.warn(
                        f"{self.kind} plug-in {ep.value!r} uses the built-in key {ep.name!r}; "
                        "the built-in is kept",
                        stacklevel=3,
                    )
                    continue
                try:
                    found[ep.name] = ep.load()
                except Exception as exc:  # a broken plug-in must not break the registry
                    warnings.warn(
                        f"could not load {self.kind} plug-in {ep.name!r} ({ep.value}): {exc}",
                        stacklevel=3,
                    )
            self._plugins = found
        return self._plugins

    def refresh(self) -> None:
        """Forget cached entry points (after installing a plug-in in a running session)."""
        self._plugins = None

    def classes(self) -> dict[str, type[T]]:
        return {**self._load_plugins(), **self._registered, **self._builtins}

    def available(self) -> list[str]:
        return sorted(self.classes())

    def register(self, name: str, cls: type[T] | None = None) -> Callable[[type[T]], type[T]]:
        """Register ``cls`` under ``name``; usable as a decorator when ``cls`` is omitted."""

        def add(cls: type[T]) -> type[T]:
            if name in self._builtins:
                raise ValueError(f"{name!r} is a built-in {self.kind} key")
            self._registered[name] = cls
            return cls

        return add if cls is None else add(cls)  # type: ignore[return-value]

    def get(self, name: str) -> type[T]:
        classes = self.classes()
        if name not in classes:
            raise UnknownKeyError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(classes))}"
            )
        return classes[name]

    def create(self, name: str, **hyper: Any) -> T:
        cls = self.get(name)
        accepted = {h.name for h in hyperparameters(cls)}
        unknown = sorted(set(hyper) - accepted)
        if unknown:
            allowed = ", ".join(sorted(accepted)) or "none"
            raise ValueError(
                f"{self.kind} {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                f"accepted: {allowed}"
            )
        return cls(**hyper)
