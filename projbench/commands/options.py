"""Command-line options several commands share, and the checks of their values.

``--jobs``/``--executor``/``--address``/``--cpus-per-task``/``--gpus-per-task`` (where runs
execute), ``--data-dir``, ``--fwht-backend`` and ``--ray-timeout``. Each option is a decorator
that adds it to a click command; :func:`check_fwht_backend` and :func:`ray_timeout` turn a given
value into the one the command uses, refusing a bad one in one line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import click

from projbench.errors import InvalidArgumentError

#: how long to wait for a Ray cluster given by --address to answer, unless told otherwise
DEFAULT_RAY_TIMEOUT_S = 30.0
RAY_TIMEOUT_ENV = "PROJBENCH_RAY_TIMEOUT"


def executor_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--jobs``, ``--executor``, ``--address``, ``--cpus-per-task``, ``--gpus-per-task``."""
    options = [
        click.option(
            "--jobs",
            default=1,
            show_default=True,
            type=click.IntRange(1),
            help="Local worker processes (with --executor ray: CPUs of a local Ray).",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: the machine the command runs on (inline or a process pool); ray: a Ray cluster.",
        ),
        click.option("--address", default=None, help="Ray cluster address (default: start a local Ray)."),
        click.option(
            "--cpus-per-task",
            default=1.0,
            show_default=True,
            type=click.FloatRange(0),
            help="Ray: CPUs reserved per training run.",
        ),
        click.option(
            "--gpus-per-task",
            default=0.0,
            show_default=True,
            type=click.FloatRange(0),
            help="Ray: GPUs per run (0.25 lets four runs share a GPU).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir`` (env ``PROJBENCH_DATA``): the root of torchvision-layout datasets."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        envvar="PROJBENCH_DATA",
        help="Root of torchvision-layout datasets [env PROJBENCH_DATA].",
    )(func)


def fwht_backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--fwht-backend NAME`` (part of every run's identity when given)."""
    return click.option(
        "--fwht-backend",
        default=None,
        metavar="NAME",
        help="FWHT backend for every run (`projbench list backends`) "
        "[default: $PROJBENCH_FWHT_BACKEND or torch].",
    )(func)


def check_fwht_backend(name: str | None) -> str | None:
    """The backend name, validated (unknown -> one-line error listing the registered ones)."""
    if name is None:
        return None
    from projbench.hadamard import get_backend

    get_backend(name)
    return name


def ray_timeout_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--ray-timeout SECONDS`` (env ``PROJBENCH_RAY_TIMEOUT``)."""
    return click.option(
        "--ray-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"How long to wait for the Ray cluster at --address to answer "
        f"[env {RAY_TIMEOUT_ENV}; default {DEFAULT_RAY_TIMEOUT_S:g}].",
    )(func)


def ray_timeout(value: float | None = None) -> float:
    """``value``, else ``$PROJBENCH_RAY_TIMEOUT``, else :data:`DEFAULT_RAY_TIMEOUT_S`: a positive
    number of seconds."""
    where, raw = "--ray-timeout", str(value)
    if value is None:
        where, raw = RAY_TIMEOUT_ENV, os.environ.get(RAY_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_RAY_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{where} must be a positive number of seconds, got {raw!r}")
    return value
