"""Typed registries that plugins fill through their hooks.

A :class:`Registry` maps a name to an object (a projection class, an architecture spec,
a dataset spec, an FWHT backend, a suite). It remembers which plugin added each name, so an
unknown name is reported with the list of registered names and the closest match.

**Name clashes.** Two plugins may register the same name. That is not an error at
registration time: both objects are kept and the clash is reported by
:meth:`Registry.conflicts`.

* A built-in name stays the built-in's: when a third-party plugin registers a name that a
  built-in plugin (``builtin_plugins``, filled by the plugin manager) registers too, the bare
  name means the built-in object and the third party's is reachable as ``plugin:name`` only.
* Between third-party plugins, *using* the ambiguous bare name fails, with a one-line
  :class:`~projbench.errors.DuplicateNameError` that says how to choose.

The qualified name ``plugin:name`` (e.g. ``myplugin:fastjl``) always picks one object, and
``prefer`` (filled by the plugin manager from ``PROJBENCH_PREFER=fastjl=myplugin,...``) makes
the bare name resolve to that plugin's object: an explicit choice of the user, which is the
only way a third party's object gets a built-in's bare name. Every other name keeps working.
:meth:`Registry.names` lists each object exactly once under a name that resolves: a unique,
built-in or preferred name bare, every other candidate of a clash qualified. The same plugin
adding one name twice is a bug of that plugin and raises
:class:`~projbench.errors.DuplicateNameError` at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from projbench.errors import DuplicateNameError, InvalidArgumentError, UnknownNameError, closest_match

T = TypeVar("T")

#: separates the plugin from the name in a qualified name ``plugin:name``
QUALIFIER = ":"
PREFER_ENV = "PROJBENCH_PREFER"


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
    ``prefer`` maps a clashing name to the plugin whose object the bare name should mean.
    ``empty_hint`` (set by the plugin manager) explains an empty registry, e.g. that the
    plugin providing this kind is blocked. ``builtin_plugins`` names the plugins whose names
    win a clash with any other plugin.
    """

    def __init__(self, kind: str, name_of: Callable[[T], str] = _name_attribute) -> None:
        self.kind = kind
        self._name_of = name_of
        # name -> [(plugin, obj), ...] in registration order; more than one entry = a clash
        self._entries: dict[str, list[tuple[str, T]]] = {}
        self.current_plugin: str = "<direct>"
        self.prefer: dict[str, str] = {}
        self.empty_hint: str | None = None
        self.builtin_plugins: frozenset[str] = frozenset()

    # -- filling ------------------------------------------------------------------------------
    def add(self, obj: T, name: str | None = None) -> T:
        """Register ``obj``; returns it so ``add`` can be used as a class decorator."""
        key = name if name is not None else self._name_of(obj)
        if not isinstance(key, str) or not key or QUALIFIER in key:
            raise InvalidArgumentError(
                f"{self.kind} name {key!r} must be a non-empty string without {QUALIFIER!r}"
            )
        entries = self._entries.setdefault(key, [])
        if any(plugin == self.current_plugin for plugin, _ in entries):
            raise DuplicateNameError(
                f"plugin {self.current_plugin!r} registers {self.kind} {key!r} twice; "
                "register each name once"
            )
        entries.append((self.current_plugin, obj))
        return obj

    def absorb(self, other: Registry[T]) -> None:
        """Add every entry of ``other``: one plugin's registrations, collected apart from the
        others so that a hook which fails half-way leaves nothing behind."""
        for key, entries in other._entries.items():
            mine = self._entries.get(key, [])
            for plugin, _ in entries:
                if any(p == plugin for p, _ in mine):
                    raise DuplicateNameError(
                        f"plugin {plugin!r} registers {self.kind} {key!r} twice; register each name once"
                    )
        for key, entries in other._entries.items():
            self._entries.setdefault(key, []).extend(entries)

    def discard_plugin(self, plugin: str) -> list[str]:
        """Forget everything ``plugin`` added (its hook failed half-way); returns the names."""
        gone = []
        for key in list(self._entries):
            kept = [(p, o) for p, o in self._entries[key] if p != plugin]
            if len(kept) != len(self._entries[key]):
                gone.append(key)
            if kept:
                self._entries[key] = kept
            else:
                del self._entries[key]
        return sorted(gone)

    # -- lookup -------------------------------------------------------------------------------
    def _resolve(self, name: str) -> tuple[str, T]:
        """(plugin, object) that ``name`` means, or a one-line error saying why none does."""
        if not isinstance(name, str):
            raise UnknownNameError(f"{self.kind} name must be a string, got {type(name).__name__}")
        if name not in self._entries and QUALIFIER in name:
            plugin, _, bare = name.partition(QUALIFIER)
            for p, obj in self._entries.get(bare, []):
                if p == plugin:
                    return p, obj
            owners = [p for p, _ in self._entries.get(bare, [])]
            if owners:
                raise UnknownNameError(
                    f"plugin {plugin!r} does not register {self.kind} {bare!r}; it is registered by "
                    + ", ".join(repr(p) for p in owners)
                )
            raise UnknownNameError(self.unknown_message(name))
        entries = self._entries.get(name)
        if not entries:
            raise UnknownNameError(self.unknown_message(name))
        wanted = self.prefer.get(name)
        if wanted is not None and all(p != wanted for p, _ in entries):
            raise UnknownNameError(
                f"{PREFER_ENV} asks for {self.kind} {name!r} from plugin {wanted!r}, which does not "
                f"register it; it is registered by {', '.join(repr(p) for p, _ in entries)}"
            )
        owner = self.bare_owner(name)
        if owner is None:
            raise DuplicateNameError(self.ambiguous_message(name))
        return next((p, obj) for p, obj in entries if p == owner)

    def bare_owner(self, name: str) -> str | None:
        """The plugin whose object the bare ``name`` means, or None (unknown or ambiguous).

        In order: the plugin ``prefer`` names (if it registers ``name``), the only registrant,
        the only built-in registrant among several.
        """
        plugins = [p for p, _ in self._entries.get(name, [])]
        wanted = self.prefer.get(name)
        if wanted is not None:
            return wanted if wanted in plugins else None
        if len(plugins) == 1:
            return plugins[0]
        builtins = [p for p in plugins if p in self.builtin_plugins]
        return builtins[0] if len(builtins) == 1 else None

    def shadowed(self) -> dict[str, tuple[str, list[str]]]:
        """Names a built-in keeps although other plugins register them too, each with
        (built-in plugin, the other plugins) — those are reachable as ``plugin:name`` only."""
        out: dict[str, tuple[str, list[str]]] = {}
        for name, plugins in self.conflicts().items():
            if name in self.prefer:
                continue
            owner = self.bare_owner(name)
            if owner is not None and owner in self.builtin_plugins:
                out[name] = (owner, [p for p in plugins if p != owner])
        return out

    def ambiguous_message(self, name: str) -> str:
        """One line: who registers ``name`` and the two ways to choose."""
        plugins = [p for p, _ in self._entries.get(name, [])]
        other = next((p for p in plugins if p != name), plugins[-1])
        return (
            f"{self.kind} {name!r} is registered by {len(plugins)} plugins "
            f"({', '.join(repr(p) for p in plugins)}); choose one by its qualified name "
            f"({', '.join(repr(p + QUALIFIER + name) for p in plugins)}) or set "
            f"{PREFER_ENV}={name}={other}"
        )

    def get(self, name: str) -> T:
        """The object registered as ``name`` (or ``plugin:name``).

        An unknown name raises :class:`UnknownNameError`; a bare name registered by several
        plugins, with no preference, raises :class:`DuplicateNameError`.
        """
        return self._resolve(name)[1]

    def unknown_message(self, name: str) -> str:
        if not self._entries and self.empty_hint:
            return f"unknown {self.kind} {name!r}: {self.empty_hint}"
        names = self.names()
        known = ", ".join(names) or "(none)"
        hint = closest_match(name, names)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        return f"unknown {self.kind} {name!r}{suggestion} Registered {self.kind}s: {known}"

    def require_nonempty(self) -> None:
        """Raise :class:`UnknownNameError` (with ``empty_hint``) if nothing is registered."""
        if not self._entries:
            hint = self.empty_hint or "no installed plugin registers any"
            raise UnknownNameError(f"no {self.kind} is registered: {hint}")

    def owner(self, name: str) -> str:
        """Name of the plugin whose object ``name`` resolves to (errors as :meth:`get`)."""
        return self._resolve(name)[0]

    def qualified_name(self, name: str) -> str:
        """``plugin:name`` of the object ``name`` resolves to: a key that stays unambiguous."""
        plugin, _ = self._resolve(name)
        bare = name.partition(QUALIFIER)[2] if name not in self._entries else name
        return f"{plugin}{QUALIFIER}{bare}"

    def conflicts(self) -> dict[str, list[str]]:
        """Every name registered by more than one plugin -> those plugins (registration order)."""
        return {k: [p for p, _ in v] for k, v in sorted(self._entries.items()) if len(v) > 1}

    def names(self) -> list[str]:
        """One resolvable name per registered object: bare for unique and preferred names,
        ``plugin:name`` for the other candidates of a clash."""
        out: list[str] = []
        for key, entries in self._entries.items():
            if len(entries) == 1:
                out.append(key)
                continue
            owner = self.bare_owner(key)
            for p, _ in entries:
                out.append(key if p == owner else f"{p}{QUALIFIER}{key}")
        return sorted(out)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]

    def by_plugin(self, plugin: str) -> list[str]:
        """The bare names ``plugin`` registers."""
        return sorted(k for k, v in self._entries.items() if any(p == plugin for p, _ in v))

    def listed_names(self, plugin: str) -> list[str]:
        """The names under which ``plugin``'s objects are listed (as in :meth:`names`)."""
        names = []
        for key in self.by_plugin(plugin):
            clash = len(self._entries[key]) > 1
            names.append(f"{plugin}{QUALIFIER}{key}" if clash and self.bare_owner(key) != plugin else key)
        return names

    def __contains__(self, name: object) -> bool:
        """True when :meth:`get` would return an object for ``name``."""
        if not isinstance(name, str):
            return False
        try:
            self._resolve(name)
        except (UnknownNameError, DuplicateNameError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def parse_prefer(raw: str) -> tuple[dict[str, str], list[str]]:
    """``"fastjl=myplugin, dense=other"`` -> ({"fastjl": "myplugin", ...}, malformed entries)."""
    prefer: dict[str, str] = {}
    bad: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, plugin = part.partition("=")
        if not sep or not name.strip() or not plugin.strip():
            bad.append(part)
            continue
        prefer[name.strip()] = plugin.strip()
    return prefer, bad
