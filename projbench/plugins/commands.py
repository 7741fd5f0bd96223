"""Built-in plugin: the ``study`` and ``intrinsic-dim`` commands."""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl


@hookimpl
def projbench_register_commands(cli: Any) -> None:
    from projbench.commands.intrinsic import intrinsic_dim
    from projbench.commands.study import study

    cli.add_command(study)
    cli.add_command(intrinsic_dim)
