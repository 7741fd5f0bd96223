"""The built-in measurement suites, one instance each, in the order ``projbench run`` lists
them (registered by the built-in ``suites`` plugin, :mod:`projbench.builtin.plugins`)."""

from __future__ import annotations

from projbench.metrics.accuracy import AccuracySuite
from projbench.metrics.distortion import DistortionSuite
from projbench.metrics.memory import MemorySuite
from projbench.metrics.speed import SpeedSuite

BUILTIN_SUITES = (DistortionSuite(), SpeedSuite(), MemorySuite(), AccuracySuite())
