"""Small parsers shared by every command (built-in or a plugin's): ``-o key=value`` options,
``--device`` resolution and comma-separated name lists. No click group lives here, so command
modules import this without importing :mod:`projbench.cli` (no import cycles).
"""

from __future__ import annotations

import ast
from typing import Any

from projbench.errors import InvalidArgumentError


def parse_option_value(raw: str) -> Any:
    """``-o`` values: Python literals (1, 0.5, True, None, 'x') or else the plain string."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(f"-o expects key=value (e.g. -o q=0.05), got {pair!r}")
        options[key.strip()] = parse_option_value(value.strip())
    return options


def resolve_device(device: str) -> str:
    """``auto`` → cuda when available else cpu; a CUDA request without CUDA is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvalidArgumentError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"device {device!r} requested but CUDA is not available here; use --device cpu"
        )
    return device


def split_names(values: tuple[str, ...]) -> list[str]:
    """Accept both ``--x a --x b`` and ``--x a,b``."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]
