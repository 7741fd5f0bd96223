"""Typed registries that plugins fill through their hooks.

A :class:`Registry` maps a name to an object (a projection class, an architecture spec,
a dataset spec, an FWHT backend, a suite). It remembers which plugin added each name, so a
duplicate is reported with both plugins' names, and an unknown name is reported with the
list of registered names and the closest match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from projbench.errors import DuplicateNameError, InvalidArgumentError, UnknownNameError, closest_match

T = TypeVar("T")


def _name_attribute(obj: object) -> str:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"{obj!r} has no string attribute 'name'; give it one (e.g. name = \"myproj\") "
            "or pass name=... to registry.add()"
        )
    return name


class Registry(Generic[T]):
    """Name -> object mapping of one kind (``kind`` is e.g. ``"projection"``).

    ``add(obj)`` takes the name from ``obj.name`` unless ``name=`` is given. The plugin that
    is currently registering (set by the plugin manager) is recorded as the owner.
    """

    def __init__(self, kind: str, name_of: Callable[[T], str] = _name_attribute) -> None:
        self.kind = kind
        self._name_of = name_of
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin: str = "<direct>"

    def add(self, obj: T, name: str | None = None) -> T:
        """Register ``obj``; returns it so ``add`` can be used as a class decorator."""
        key = name if name is not None else self._name_of(obj)
        if key in self._items:
            raise DuplicateNameError(
                f"{self.kind} {key!r} is registered twice: by plugin {self._owners[key]!r} "
                f"and by plugin {self.current_plugin!r}; block one with "
                f"PROJBENCH_DISABLE_PLUGINS={self.current_plugin}"
            )
        self._items[key] = obj
        self._owners[key] = self.current_plugin
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises :class:`UnknownNameError`."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._items)) or "(none)"
        hint = closest_match(name, self._items)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        return f"unknown {self.kind} {name!r}{suggestion} Registered {self.kind}s: {known}"

    def owner(self, name: str) -> str:
        """Name of the plugin that registered ``name``."""
        self.get(name)
        return self._owners[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def by_plugin(self, plugin: str) -> list[str]:
        return sorted(k for k, v in self._owners.items() if v == plugin)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
