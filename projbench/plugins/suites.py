"""Built-in plugin: the measurement suites of ``projbench run``."""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_suites(registry: Registry[Any]) -> None:
    from projbench.metrics.accuracy import AccuracySuite
    from projbench.metrics.distortion import DistortionSuite
    from projbench.metrics.memory import MemorySuite
    from projbench.metrics.speed import SpeedSuite

    for suite in (DistortionSuite(), SpeedSuite(), MemorySuite(), AccuracySuite()):
        registry.add(suite)
