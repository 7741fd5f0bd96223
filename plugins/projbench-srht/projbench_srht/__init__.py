"""projbench-srht: the subsampled randomized Hadamard transform as a projbench plugin.

This module is what the entry point loads, so it stays light: the projection (and torch with
it) is imported inside the hook, when projbench first needs its projections. ``projbench
--help`` and command-line errors then stay fast however many plugins are installed.
"""

from __future__ import annotations

from typing import Any

import projbench

__version__ = "0.1.0"


@projbench.hookimpl
def projbench_register_projections(registry: Any) -> None:
    from projbench_srht.srht import SRHT

    registry.add(SRHT)


def __getattr__(name: str) -> Any:
    if name == "SRHT":
        from projbench_srht.srht import SRHT

        return SRHT
    raise AttributeError(f"module 'projbench_srht' has no attribute {name!r}")
