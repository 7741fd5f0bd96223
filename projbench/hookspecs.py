"""The whole extension contract of projbench, in one file.

A plugin is a module (or object) with functions decorated by :data:`projbench.hookimpl`
whose names are the hooks below. It is found through the entry-point group ``projbench``::

    [project.entry-points.projbench]
    myproj = "myproj_plugin"

Each ``projbench_register_*`` hook receives a :class:`projbench.registry.Registry` and calls
``registry.add(...)`` once per object it contributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from projbench.registry import Registry

PROJECT_NAME = "projbench"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def projbench_register_projections(registry: Registry[Any]) -> None:
    """Add :class:`projbench.Projection` subclasses: ``registry.add(MyProjection)``."""


@hookspec
def projbench_register_architectures(registry: Registry[Any]) -> None:
    """Add :class:`projbench.architectures.Architecture` specs (name, builder, description)."""


@hookspec
def projbench_register_datasets(registry: Registry[Any]) -> None:
    """Add :class:`projbench.datasets.DatasetSpec` objects."""


@hookspec
def projbench_register_fwht_backends(registry: Registry[Any]) -> None:
    """Add :class:`projbench.hadamard.FWHTBackend` objects (name, transform, availability)."""


@hookspec
def projbench_register_suites(registry: Registry[Any]) -> None:
    """Add :class:`projbench.suites.Suite` objects that ``projbench run --suite`` can select."""


@hookspec
def projbench_register_commands(cli: click.Group) -> None:
    """Add extra click commands to the ``projbench`` command group: ``cli.add_command(cmd)``."""
