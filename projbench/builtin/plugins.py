"""The plugins that ship with projbench, declared once.

Each :class:`BuiltinPlugin` is a plugin name, the hook it implements and what that hook adds:
``module:attribute`` targets, each a class, an instance or a tuple of them. The manager
registers every entry of :data:`BUILTIN_PLUGINS` through pluggy exactly as it registers a
third-party plugin's module, so built-ins use the same hooks; what differs is only where they
are listed (here, not in entry points) and that their code runs without a deadline.

A target is imported when its hook runs (when the registry of its kind is first filled), not
when the plugin is registered: ``projbench --help`` and error messages never import torch.
The plugin names are what ``PROJBENCH_DISABLE_PLUGINS`` blocks and ``projbench plugins`` shows.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from projbench.hookspecs import hookimpl


@dataclass(frozen=True)
class BuiltinPlugin:
    """One built-in plugin: ``hook`` adds every object named by ``targets`` with ``adder``
    (``registry.add`` for the registries, ``cli.add_command`` for commands)."""

    name: str
    hook: str
    targets: tuple[str, ...]
    adder: str = "add"

    @property
    def module(self) -> str:
        """The module(s) holding the implementation (what ``projbench plugins`` shows)."""
        return ", ".join(dict.fromkeys(t.split(":")[0] for t in self.targets))

    def plugin(self) -> object:
        """An object with the hook implementation, ready for ``PluginManager.register``."""
        return types.SimpleNamespace(**{self.hook: hookimpl(self._implementation())})

    def _implementation(self) -> Callable[[Any], None]:
        targets, adder = self.targets, self.adder

        def add_targets(to: Any) -> None:
            add = getattr(to, adder)
            for target in targets:
                module, attribute = target.split(":")
                value = getattr(importlib.import_module(module), attribute)
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    add(item)

        # pluggy passes arguments by the names of the hook specification's parameters
        def register(registry: Any) -> None:
            add_targets(registry)

        def register_commands(cli: Any) -> None:
            add_targets(cli)

        return register_commands if self.hook == "projbench_register_commands" else register


_PROJECTIONS = "projbench_register_projections"

#: every plugin that ships with projbench, in registration order
BUILTIN_PLUGINS: tuple[BuiltinPlugin, ...] = (
    BuiltinPlugin("dense", _PROJECTIONS, ("projbench.builtin.dense:DenseProjection",)),
    BuiltinPlugin("sparse", _PROJECTIONS, ("projbench.builtin.sparse:SparseProjection",)),
    BuiltinPlugin("fastfood", _PROJECTIONS, ("projbench.builtin.fastfood:FastfoodProjection",)),
    BuiltinPlugin("fastjl", _PROJECTIONS, ("projbench.builtin.fastjl:FastJLProjection",)),
    BuiltinPlugin("kronecker", _PROJECTIONS, ("projbench.builtin.kronecker:KroneckerProjection",
                                              "projbench.builtin.kronecker:KroneckerSumProjection")),
    BuiltinPlugin("torch-fwht", "projbench_register_fwht_backends",
                  ("projbench.builtin.fwht_torch:TORCH_BACKEND",
                   "projbench.builtin.fwht_fhtcpu:FHTCPU_BACKEND")),
    BuiltinPlugin("architectures", "projbench_register_architectures",
                  ("projbench.builtin.architectures:ARCHITECTURES",)),
    BuiltinPlugin("datasets", "projbench_register_datasets", ("projbench.builtin.datasets:DATASETS",)),
    BuiltinPlugin("suites", "projbench_register_suites", ("projbench.metrics.builtin:BUILTIN_SUITES",)),
    BuiltinPlugin("commands", "projbench_register_commands",
                  ("projbench.commands.listing:list_command", "projbench.commands.listing:plugins_command",
                   "projbench.commands.run:run_command", "projbench.commands.report:report_command",
                   "projbench.commands.compare:compare_command", "projbench.commands.study:study",
                   "projbench.commands.intrinsic:intrinsic_dim"),
                  adder="add_command"),
)

#: the plugin names of the built-ins (a third-party plugin cannot take one)
BUILTIN_NAMES: frozenset[str] = frozenset(p.name for p in BUILTIN_PLUGINS)
