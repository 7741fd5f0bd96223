"""The pluggy plugin manager: entry points, built-in fallback, blocking, and introspection.

Plugins are loaded from the entry-point group ``projbench``. Built-in plugins are listed there
too; the :data:`BUILTIN_PLUGINS` tuple registers any that are missing (a stale editable
install), so built-ins and third-party plugins go through the same path. A plugin whose import
fails produces a warning naming it, and the others still load. ``PROJBENCH_DISABLE_PLUGINS``
(comma-separated plugin names) blocks plugins by name.

Two plugins registering one name is reported (:func:`conflicts`, ``PluginInfo.conflicts``),
not fatal: only the ambiguous bare name is refused, and ``plugin:name`` or
``PROJBENCH_PREFER=name=plugin`` chooses (see :mod:`projbench.registry`). A plugin whose
registration hook raises is skipped with a warning, like one that fails to import.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from projbench import hookspecs
from projbench.errors import UnknownNameError
from projbench.registry import PREFER_ENV, Registry, parse_prefer

#: (plugin name, module) of the plugins that ship with projbench.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("dense", "projbench.plugins.dense"),
    ("sparse", "projbench.plugins.sparse"),
    ("fastfood", "projbench.plugins.fastfood"),
    ("fastjl", "projbench.plugins.fastjl"),
    ("torch-fwht", "projbench.plugins.fwht_torch"),
    ("architectures", "projbench.plugins.architectures"),
    ("datasets", "projbench.plugins.datasets"),
    ("suites", "projbench.plugins.suites"),
    ("commands", "projbench.plugins.commands"),
)

#: registry kind -> hook that fills it
REGISTRY_HOOKS: dict[str, str] = {
    "projections": "projbench_register_projections",
    "architectures": "projbench_register_architectures",
    "datasets": "projbench_register_datasets",
    "backends": "projbench_register_fwht_backends",
    "suites": "projbench_register_suites",
}

_SINGULAR = {
    "projections": "projection",
    "architectures": "architecture",
    "datasets": "dataset",
    "backends": "FWHT backend",
    "suites": "suite",
}

DISABLE_ENV = "PROJBENCH_DISABLE_PLUGINS"
ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported; it is skipped and the others still work."""


@dataclass
class PluginInfo:
    """What ``projbench plugins`` shows about one plugin."""

    name: str
    module: str
    version: str
    builtin: bool
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    #: names this plugin registers that another plugin registers too (one line each)
    conflicts: list[str] = field(default_factory=list)


@dataclass
class _State:
    pm: pluggy.PluginManager
    meta: dict[str, PluginInfo]
    registries: dict[str, Registry[Any]] = field(default_factory=dict)


_state: _State | None = None


def disabled_plugins() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else "unknown"


def _projbench_version() -> str:
    from projbench import __version__

    return __version__


def _build_manager() -> _State:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    meta: dict[str, PluginInfo] = {}
    blocked = disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
    builtin_modules = dict(BUILTIN_PLUGINS)

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or pm.has_plugin(ep.name) or ep.name in meta:
            continue
        builtin = builtin_modules.get(ep.name) == ep.value
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - any import error of a plugin
            warnings.warn(
                f"projbench plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )
            meta[ep.name] = PluginInfo(
                ep.name, ep.value, _dist_version(ep), builtin, error=f"{type(exc).__name__}: {exc}"
            )
            continue
        version = _projbench_version() if builtin else _dist_version(ep)
        meta[ep.name] = PluginInfo(ep.name, ep.value, version, builtin)

    for name, module in BUILTIN_PLUGINS:
        if name in blocked or pm.has_plugin(name) or name in meta:
            continue
        pm.register(importlib.import_module(module), name=name)
        meta[name] = PluginInfo(name, module, _projbench_version(), True)

    pm.check_pending()
    return _State(pm, meta)


def _state_or_build() -> _State:
    global _state
    if _state is None:
        _state = _build_manager()
    return _state


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    return _state_or_build().pm


def reset() -> None:
    """Forget the manager and all registries (tests; after installing a plugin at runtime)."""
    global _state
    _state = None


def preferences() -> dict[str, str]:
    """``PROJBENCH_PREFER=name=plugin,...``: which plugin a clashing bare name means.

    Malformed entries are ignored with a warning (an ambiguous name then still fails clearly).
    """
    prefer, bad = parse_prefer(os.environ.get(PREFER_ENV, ""))
    if bad:
        warnings.warn(
            f"{PREFER_ENV}: ignoring {', '.join(repr(b) for b in bad)}; write name=plugin, e.g. "
            f"{PREFER_ENV}=fastjl=myplugin",
            PluginLoadWarning,
            stacklevel=3,
        )
    return prefer


def _empty_hint(state: _State, kind: str) -> str:
    """Why registry ``kind`` may be empty: blocked or failed plugins, or none installed."""
    blocked = sorted(disabled_plugins())
    failed = sorted(n for n, i in state.meta.items() if i.error)
    parts = []
    if blocked:
        parts.append(f"{DISABLE_ENV}={','.join(blocked)} blocks plugin(s) {', '.join(map(repr, blocked))}")
    if failed:
        parts.append(f"plugin(s) {', '.join(map(repr, failed))} failed to load (see `projbench plugins`)")
    if not parts:
        parts.append(f"no installed plugin registers {kind}")
    return "; ".join(parts) + f"; nothing provides {kind}, so there is nothing to choose from"


def get_registry(kind: str) -> Registry[Any]:
    """The filled registry of ``kind`` (one of :data:`REGISTRY_HOOKS`).

    Each plugin's hook is called on its own, in pluggy's call order (``tryfirst`` first,
    ``trylast`` last, otherwise the most recently registered first), so the registry knows
    which plugin adds what. A hook that raises anything (a projbench error such as a class
    without ``name`` included) is skipped with a :class:`PluginLoadWarning` naming the plugin,
    and whatever it added before failing is removed; the other plugins still register.
    """
    state = _state_or_build()
    if kind not in REGISTRY_HOOKS:
        raise UnknownNameError(
            f"unknown registry kind {kind!r}; choose one of {', '.join(REGISTRY_HOOKS)}"
        )
    if kind not in state.registries:
        registry: Registry[Any] = Registry(_SINGULAR[kind])
        registry.prefer = preferences()
        hook = getattr(state.pm.hook, REGISTRY_HOOKS[kind])
        # get_hookimpls() is in pluggy's storage order; pluggy calls them in reverse.
        for impl in reversed(hook.get_hookimpls()):
            registry.current_plugin = impl.plugin_name
            try:
                impl.function(registry=registry)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
                registry.discard_plugin(impl.plugin_name)
                warnings.warn(
                    f"projbench plugin {impl.plugin_name!r} failed while registering {kind} and "
                    f"is skipped for them: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                info = state.meta.get(impl.plugin_name)
                if info is not None:
                    info.error = f"registering {kind}: {type(exc).__name__}: {exc}"
        registry.current_plugin = "<direct>"
        if len(registry) == 0:
            registry.empty_hint = _empty_hint(state, kind)
        state.registries[kind] = registry
    return state.registries[kind]


@dataclass
class Conflict:
    """One name registered by several plugins in one registry kind."""

    kind: str
    name: str
    plugins: list[str]
    chosen: str | None  # the plugin PROJBENCH_PREFER picks, or None: the bare name is refused
    message: str


def conflicts() -> list[Conflict]:
    """Every name clash over all registry kinds (what ``plugins`` and ``list`` should show)."""
    out = []
    for kind in REGISTRY_HOOKS:
        registry = get_registry(kind)
        for name, plugins in registry.conflicts().items():
            chosen = registry.prefer.get(name)
            chosen = chosen if chosen in plugins else None
            msg = (f"{_SINGULAR[kind]} {name!r}: {PREFER_ENV} picks plugin {chosen!r}; the others as "
                   + ", ".join(repr(f"{p}:{name}") for p in plugins if p != chosen)
                   if chosen else registry.ambiguous_message(name))
            out.append(Conflict(kind, name, list(plugins), chosen, msg))
    return out


def plugin_infos() -> list[PluginInfo]:
    """Every known plugin with its version, what it registers and its name clashes."""
    state = _state_or_build()
    for info in state.meta.values():
        info.conflicts = []
    for kind in REGISTRY_HOOKS:
        registry = get_registry(kind)
        for name, info in state.meta.items():
            names = registry.by_plugin(name)
            if names:
                info.registers[kind] = names
    for c in conflicts():
        for p in c.plugins:
            if p in state.meta:
                others = ", ".join(repr(o) for o in c.plugins if o != p)
                state.meta[p].conflicts.append(f"{c.kind} {c.name!r} also registered by {others}")
    return sorted(state.meta.values(), key=lambda i: (not i.builtin, i.name))


def register_plugin(plugin: object, name: str) -> None:
    """Register a plugin object at runtime (tests, notebooks); registries are rebuilt."""
    state = _state_or_build()
    state.pm.register(plugin, name=name)
    state.meta[name] = PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), "runtime", False)
    state.registries.clear()


def unregister_plugin(name: str) -> None:
    state = _state_or_build()
    if state.pm.has_plugin(name):
        state.pm.unregister(name=name)
    state.meta.pop(name, None)
    state.registries.clear()
