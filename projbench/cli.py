"""The ``projbench`` command line: the click group, its one error wrapper and the entry point.

Every command — ``list``, ``plugins``, ``run``, ``report``, ``compare``, ``study``,
``intrinsic-dim`` and any a third-party plugin adds — is declared in a module of its own
(:mod:`projbench.commands`) and added to the group through the ``projbench_register_commands``
hook, built-ins first (:mod:`projbench.builtin.plugins`).

Progress bars and result tables go to stderr (rich); data — listings, result file paths,
figure paths — go to stdout, so ``projbench run … > path.txt`` captures what was written.
Every :class:`projbench.ProjbenchError` becomes a one-line ``Error: …`` and exit status 1; so
does a write that a full disk, a quota or a read-only file system refused (``OSError`` with
``ENOSPC``, ``EDQUOT`` or ``EROFS``), wherever in a command it happens.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from projbench import __version__
from projbench.allocator import tune_cpu_allocator
from projbench.errors import ProjbenchError
from projbench.manager import register_commands


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    click.echo(f"Warning: {message}", err=True)


class ProjbenchGroup(click.Group):
    """Adds the plugins' commands (built-ins first) when a command is looked up, and turns a
    ProjbenchError — or a write refused by a full disk — into a one-line error."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        """Add every plugin's commands once; a failing plugin is a one-line warning (also under
        ``--help``, which lists commands before any command runs)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Warnings print as one line for the duration of the command only: the previous
        # ``warnings.showwarning`` and filters come back afterwards (callers of ``cli`` in-process).
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except ProjbenchError as exc:
                raise click.ClickException(" ".join(str(exc).split())) from None
            except OSError as exc:
                message = _device_refused(exc)
                if message is None:
                    raise
                raise click.ClickException(message) from None


def _device_refused(exc: OSError) -> str | None:
    """One line for a write that a full disk, a quota or a read-only file system refused
    anywhere in a command (what, why, what to do); None for any other ``OSError``."""
    from projbench.jsonl import DEVICE_FULL_ADVICE, write_failure

    if exc.errno not in DEVICE_FULL_ADVICE:
        return None
    what = str(exc.filename) if exc.filename is not None else "a file"
    return " ".join(write_failure(what, exc, "run the same command again").split())


@click.group(cls=ProjbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="projbench")
def cli() -> None:
    """Benchmark random projections for subspace training of neural networks.

    \b
    Start here:
      projbench list                 what is installed (projections, architectures, ...)
      projbench run --proj fastjl    every suite on the small embedded defaults (< 1 min)
      projbench report runs/         tables and PNG figures from result files
      projbench intrinsic-dim --arch fc --dataset mnist --proj fastfood
      projbench compare A.jsonl B.jsonl   B/A time ratios with confidence intervals

    \b
    CPU memory: the commands keep freed memory for reuse (glibc malloc, policy "retain"), which
    avoids page faults on every large tensor; PROJBENCH_CPU_ALLOCATOR=system leaves malloc as is.
    """
    tune_cpu_allocator()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="projbench")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
