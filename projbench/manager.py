"""The pluggy plugin manager: entry points, built-in fallback, blocking, and introspection.

Built-in plugins are declared once, in :data:`projbench.builtin.plugins.BUILTIN_PLUGINS`, and
registered first; third-party plugins are loaded from the entry-point group ``projbench``. Both
are pluggy plugins implementing the same hooks. An entry point of the ``projbench``
distribution itself is stale metadata of an older install (built-ins were entry points once)
and is ignored. A plugin whose import fails produces a warning naming it, and the others still
load. ``PROJBENCH_DISABLE_PLUGINS``
(comma-separated plugin names) blocks plugins by name.

Two plugins registering one name is reported (:func:`conflicts`, ``PluginInfo.conflicts``),
not fatal. A third-party plugin never takes a built-in's name: the bare name stays the
built-in's and the third party's object is reachable as ``plugin:name``, with a warning.
Between third parties only the ambiguous bare name is refused, and ``plugin:name`` or
``PROJBENCH_PREFER=name=plugin`` chooses (see :mod:`projbench.registry`).

Third-party plugin code (the import of the module, every hook) runs in a worker thread with a
deadline of ``PROJBENCH_PLUGIN_TIMEOUT`` seconds. A plugin that raises anything there
(``sys.exit()`` and ``KeyboardInterrupt`` included) is skipped with a :class:`PluginLoadWarning`
naming it and what it raised, like one that fails to import; one that does not answer in time
is skipped with a warning too and never called again. The command goes on either way. A
Ctrl-C of the user still stops the command: it reaches the main thread, not the worker.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from projbench import hookspecs
from projbench.builtin.plugins import BUILTIN_NAMES, BUILTIN_PLUGINS
from projbench.errors import UnknownNameError
from projbench.registry import PREFER_ENV, QUALIFIER, Registry, parse_prefer

if TYPE_CHECKING:
    import click

_T = TypeVar("_T")

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
TIMEOUT_ENV = "PROJBENCH_PLUGIN_TIMEOUT"
#: seconds a third-party plugin may take to import, or to run one of its hooks
DEFAULT_PLUGIN_TIMEOUT = 20.0
ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded or used; it is skipped and the others still work."""


class PluginFailure(Exception):
    """Plugin code raised (anything) or did not answer in time; ``str`` says which, in one line."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


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
    #: seconds third-party plugin code may run (PROJBENCH_PLUGIN_TIMEOUT)
    timeout: float = DEFAULT_PLUGIN_TIMEOUT


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


def plugin_timeout() -> float:
    """``PROJBENCH_PLUGIN_TIMEOUT`` in seconds; a value that is not a positive number warns and
    gives :data:`DEFAULT_PLUGIN_TIMEOUT`."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_PLUGIN_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        warnings.warn(
            f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds; using "
            f"{DEFAULT_PLUGIN_TIMEOUT:g}",
            PluginLoadWarning,
            stacklevel=2,
        )
        return DEFAULT_PLUGIN_TIMEOUT
    return value


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` in one line (``SystemExit: 3``, ``KeyboardInterrupt``)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_with_deadline(func: Callable[[], _T], timeout: float) -> _T:
    """``func()`` run in a daemon thread, waited for ``timeout`` seconds.

    Raises :class:`PluginFailure` when it raises anything (``SystemExit`` and
    ``KeyboardInterrupt`` included) or is still running at the deadline; a thread that hangs is
    left behind, and being a daemon it does not keep the process alive.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt in plugin code
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="projbench-plugin", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise PluginFailure(f"no answer within {timeout:g} s (set {TIMEOUT_ENV} to wait longer)",
                            timed_out=True)
    if "error" in outcome:
        raise PluginFailure(describe_exception(outcome["error"])) from outcome["error"]
    return outcome["value"]


def _run_plugin_code(state: _State, plugin: str, func: Callable[[], _T]) -> _T:
    """``func()`` on behalf of ``plugin``: built-ins directly, third parties under a deadline.

    Any failure becomes :class:`PluginFailure`.
    """
    info = state.meta.get(plugin)
    if info is not None and info.builtin:
        try:
            return func()
        except Exception as exc:  # a broken plugin must not break the rest
            raise PluginFailure(describe_exception(exc)) from exc
    return call_with_deadline(func, state.timeout)


def _drop_plugin(state: _State, plugin: str, error: str) -> None:
    """Unregister and block ``plugin`` (it hung: it is not called again); record ``error``."""
    if state.pm.has_plugin(plugin):
        state.pm.unregister(name=plugin)
    state.pm.set_blocked(plugin)
    info = state.meta.get(plugin)
    if info is not None:
        info.error = error


def _is_own_stale_entry_point(ep: metadata.EntryPoint) -> bool:
    """An entry point of the ``projbench`` distribution itself: left by an install made when the
    built-ins were entry points (they are registered from :data:`BUILTIN_PLUGINS` now)."""
    dist = getattr(getattr(ep, "dist", None), "name", None)
    return isinstance(dist, str) and dist.lower() == hookspecs.PROJECT_NAME and ep.name in BUILTIN_NAMES


def _name_for(ep: metadata.EntryPoint, taken: set[str]) -> str | None:
    """The plugin name of ``ep``: its entry-point name, unless a third party uses a built-in
    plugin's name: then its distribution's name (with a warning), or None when that is taken too."""
    if ep.name not in BUILTIN_NAMES:
        return ep.name
    dist = getattr(getattr(ep, "dist", None), "name", None)
    usable = isinstance(dist, str) and dist and QUALIFIER not in dist
    alias = dist if usable and dist not in BUILTIN_NAMES and dist not in taken else None
    then = (f"it is loaded as plugin {alias!r} instead" if alias
            else "it is skipped; its entry point needs another name")
    warnings.warn(
        f"projbench plugin {ep.name!r} ({ep.value}, from {dist or 'an unknown distribution'}) has the "
        f"name of a built-in plugin: {then}",
        PluginLoadWarning,
        stacklevel=3,
    )
    return alias


def _load_entry_point(state: _State, ep: metadata.EntryPoint, name: str) -> None:
    """Import and register one third-party entry point as plugin ``name``; a failure is a
    warning and a ``PluginInfo`` with its error."""
    state.meta[name] = PluginInfo(name, ep.value, _dist_version(ep), False)
    try:
        plugin = _run_plugin_code(state, name, ep.load)
        state.pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - PluginFailure, or pluggy refusing its hooks
        error = str(exc) if isinstance(exc, PluginFailure) else describe_exception(exc)
        warnings.warn(
            f"projbench plugin {name!r} ({ep.value}) failed to load and is skipped: {error}",
            PluginLoadWarning,
            stacklevel=3,
        )
        state.meta[name].error = error


def _drop_invalid_plugins(state: _State) -> None:
    """Unregister, with a warning, every plugin whose hooks pluggy refuses (unknown hook names)."""
    while True:
        try:
            state.pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = state.pm.get_name(exc.plugin)
            if name is None:
                raise
            error = " ".join(str(exc).split())
            warnings.warn(f"projbench plugin {name!r} is skipped: {error}", PluginLoadWarning,
                          stacklevel=3)
            _drop_plugin(state, name, error)


def _build_manager() -> _State:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    state = _State(pm, {}, timeout=plugin_timeout())
    blocked = disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
    for builtin in BUILTIN_PLUGINS:
        if builtin.name in blocked:
            continue
        pm.register(builtin.plugin(), name=builtin.name)
        state.meta[builtin.name] = PluginInfo(builtin.name, builtin.module, _projbench_version(), True)

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or _is_own_stale_entry_point(ep):
            continue
        plugin_name = _name_for(ep, set(state.meta))
        if plugin_name is None or plugin_name in blocked or plugin_name in state.meta:
            continue
        _load_entry_point(state, ep, plugin_name)

    _drop_invalid_plugins(state)
    return state


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
    and nothing it added is kept; the other plugins still register. A third party's name that
    a built-in registers too stays the built-in's, with a warning naming ``plugin:name``.
    """
    state = _state_or_build()
    if kind not in REGISTRY_HOOKS:
        raise UnknownNameError(
            f"unknown registry kind {kind!r}; choose one of {', '.join(REGISTRY_HOOKS)}"
        )
    if kind not in state.registries:
        state.registries[kind] = _fill_registry(state, kind)
    return state.registries[kind]


def _fill_registry(state: _State, kind: str) -> Registry[Any]:
    registry: Registry[Any] = Registry(_SINGULAR[kind])
    registry.prefer = preferences()
    registry.builtin_plugins = frozenset(n for n, i in state.meta.items() if i.builtin)
    hook = getattr(state.pm.hook, REGISTRY_HOOKS[kind])
    # get_hookimpls() is in pluggy's storage order; pluggy calls them in reverse.
    for impl in reversed(hook.get_hookimpls()):
        staged = _registrations_of(state, impl, kind)
        if staged is not None:
            registry.absorb(staged)
    if len(registry) == 0:
        registry.empty_hint = _empty_hint(state, kind)
    _warn_shadowed(registry)
    return registry


def _registrations_of(state: _State, impl: Any, kind: str) -> Registry[Any] | None:
    """What one plugin's hook registers, in a registry of its own; None (and a warning) when
    the hook fails or hangs."""
    staged: Registry[Any] = Registry(_SINGULAR[kind])
    staged.current_plugin = impl.plugin_name
    try:
        _run_plugin_code(state, impl.plugin_name, functools.partial(impl.function, registry=staged))
    except PluginFailure as failure:
        _warn_hook_failure(state, impl.plugin_name, f"registering {kind}", failure)
        return None
    return staged


def _warn_hook_failure(state: _State, plugin: str, doing: str, failure: PluginFailure) -> None:
    """The one-line warning about a failed hook; a plugin that hung is dropped for good."""
    if failure.timed_out:
        message = f"projbench plugin {plugin!r} hung while {doing} and is skipped from now on: {failure}"
        _drop_plugin(state, plugin, f"{doing}: {failure}")
    else:
        what = doing.split(" ", 1)[-1]
        message = (f"projbench plugin {plugin!r} failed while {doing} and is skipped for {what}: "
                   f"{failure}")
        info = state.meta.get(plugin)
        if info is not None:
            info.error = f"{doing}: {failure}"
    warnings.warn(message, PluginLoadWarning, stacklevel=4)


def _warn_shadowed(registry: Registry[Any]) -> None:
    """Warn once per third party whose name a built-in keeps."""
    for name, (builtin, others) in registry.shadowed().items():
        for plugin in others:
            warnings.warn(
                f"projbench plugin {plugin!r} registers {registry.kind} {name!r}, a built-in name: "
                f"{name!r} stays the built-in one (plugin {builtin!r}); use "
                f"'{plugin}{QUALIFIER}{name}' for the plugin's",
                PluginLoadWarning,
                stacklevel=5,
            )


def register_commands(cli: click.Group) -> None:
    """Let every plugin add its commands to ``cli``, built-ins first.

    Each hook fills a group of its own, so a hook that fails or hangs adds nothing (it is
    skipped with a warning). A command whose name is taken keeps it; the newcomer is added as
    ``plugin:name``, with a warning.
    """
    import click

    state = _state_or_build()
    impls = list(reversed(state.pm.hook.projbench_register_commands.get_hookimpls()))
    impls.sort(key=lambda impl: not _is_builtin(state, impl.plugin_name))
    for impl in impls:
        staged = click.Group(name=cli.name)
        try:
            _run_plugin_code(state, impl.plugin_name, functools.partial(impl.function, cli=staged))
        except PluginFailure as failure:
            _warn_hook_failure(state, impl.plugin_name, "adding commands", failure)
            continue
        for name, command in staged.commands.items():
            _add_command(cli, impl.plugin_name, name, command)


def _is_builtin(state: _State, plugin: str) -> bool:
    info = state.meta.get(plugin)
    return info is not None and info.builtin


def _add_command(cli: click.Group, plugin: str, name: str, command: click.Command) -> None:
    """Add ``command`` as ``name``, or as ``plugin:name`` (with a warning) when that is taken."""
    if name in cli.commands and cli.commands[name] is not command:
        qualified = f"{plugin}{QUALIFIER}{name}"
        warnings.warn(
            f"projbench plugin {plugin!r} adds command {name!r}, which is taken; it is "
            f"available as {qualified!r}",
            PluginLoadWarning,
            stacklevel=3,
        )
        name = qualified
    cli.add_command(command, name=name)


@dataclass
class Conflict:
    """One name registered by several plugins in one registry kind."""

    kind: str
    name: str
    plugins: list[str]
    chosen: str | None  # the plugin the bare name means (PROJBENCH_PREFER's or the built-in), or None
    message: str


def conflicts() -> list[Conflict]:
    """Every name clash over all registry kinds (what ``plugins`` and ``list`` should show)."""
    out = []
    for kind in REGISTRY_HOOKS:
        registry = get_registry(kind)
        for name, plugins in registry.conflicts().items():
            chosen = registry.bare_owner(name)
            out.append(Conflict(kind, name, list(plugins), chosen,
                                _conflict_message(registry, kind, name, chosen)))
    return out


def _conflict_message(registry: Registry[Any], kind: str, name: str, chosen: str | None) -> str:
    """One line: who gets the bare ``name`` and how to reach the others."""
    if chosen is None:
        return registry.ambiguous_message(name)
    why = f"{PREFER_ENV} picks plugin" if name in registry.prefer else "the built-in plugin keeps it:"
    others = ", ".join(repr(f"{p}{QUALIFIER}{name}") for p in registry.conflicts()[name] if p != chosen)
    return f"{_SINGULAR[kind]} {name!r}: {why} {chosen!r}; the others as {others}"


def plugin_infos() -> list[PluginInfo]:
    """Every known plugin with its version, what it registers and its name clashes."""
    state = _state_or_build()
    for info in state.meta.values():
        info.conflicts = []
    for kind in REGISTRY_HOOKS:
        registry = get_registry(kind)
        for name, info in state.meta.items():
            names = registry.listed_names(name)
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
