"""The suite contract: a registered, testable unit of measurement that ``projbench run`` composes.

A :class:`Suite` turns the run's projections and :class:`RunSettings` into a list of
:class:`Case` objects and measures one case at a time, returning a :class:`CaseOutcome`.
The runner records every outcome as one ``case`` line of the results file; a case that
raises is recorded as ``failed`` with its error, and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class RunSettings:
    """What the user chose for a run (shared by every suite).

    ``options`` are projection-specific keyword options (``-o key=value``), passed to
    :func:`projbench.make_projection` for every projection that accepts them.
    ``quick`` asks suites for their small default grid (the main job must stay under a minute).
    """

    device: str = "cpu"
    seed: int = 0
    dtype: str = "float32"
    options: dict[str, Any] = field(default_factory=dict)
    quick: bool = True
    data_dir: str | None = None

    def projection_options(self, name: str) -> dict[str, Any]:
        """The subset of ``options`` that projection ``name`` accepts (others are for others)."""
        from projbench.manager import get_registry

        accepted = set(get_registry("projections").get(name).option_names())
        return {k: v for k, v in self.options.items() if k in accepted}

    def make_projection(self, name: str, d: int, D: int, *, seed: int | None = None) -> Any:
        """Build projection ``name`` with this run's device, dtype, seed and options."""
        from projbench.projection import make_projection

        return make_projection(
            name, d, D, seed=self.seed if seed is None else seed, device=self.device,
            dtype=self.torch_dtype, **self.projection_options(name),
        )

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}[self.dtype]


#: RunSettings fields that change a measured number: resuming a file recorded with other values
#: is refused, and each of them is part of every case key (:func:`case_identity`).
RESULT_SETTINGS: tuple[str, ...] = ("seed", "dtype", "device", "options", "quick")


@dataclass
class Case:
    """One measurement: a suite applied to one projection with concrete parameters.

    ``identity`` holds what changes the result but is not a suite parameter: the run's seed,
    dtype and device, the projection options the projection accepts, and the plugin that
    registered the projection. The runner fills it (:func:`case_identity`) before any case
    runs, so :attr:`key` differs whenever any of them differs.
    """

    suite: str
    projection: str
    params: dict[str, Any]
    architecture: str | None = None
    dataset: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable identifier used to skip cases already recorded when a run resumes: a hash of
        suite, projection, architecture, dataset, params and (when set) ``identity``."""
        parts: list[Any] = [self.suite, self.projection, self.architecture, self.dataset, self.params]
        if self.identity:
            parts.append(self.identity)
        blob = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def case_identity(case: Case, settings: RunSettings) -> dict[str, Any]:
    """Everything outside ``case.params`` that changes the number measured for ``case``.

    ``plugin`` is the plugin that registered the projection (None for pseudo-projections such
    as the accuracy suite's ``none`` baseline), so a third-party projection that reuses a
    built-in's name never shares its keys; ``options`` are only those the projection accepts
    (an option meant for another projection leaves this one's keys unchanged).
    """
    from projbench.manager import get_registry

    registry = get_registry("projections")
    plugin: str | None = None
    options: dict[str, Any] = {}
    if case.projection in registry:
        plugin = registry.owner(case.projection)
        options = settings.projection_options(case.projection)
    return {"seed": settings.seed, "dtype": settings.dtype, "device": settings.device,
            "quick": settings.quick, "options": options, "plugin": plugin}


@dataclass
class CaseOutcome:
    """What a suite measured for one case.

    ``status`` is ``ok``, ``diverged`` (training hit a NaN/inf loss) or ``skipped`` (with the
    reason in ``error``); ``failed`` is set by the runner when ``run_case`` raises.
    ``stats`` are scalars shown in tables; ``samples`` raw measurements (kept small).
    """

    stats: dict[str, Any]
    samples: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None


@runtime_checkable
class Suite(Protocol):
    """A measurement suite. ``table_columns`` are (header, stats key) for the summary table."""

    name: str
    description: str
    table_columns: tuple[tuple[str, str], ...]

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]: ...

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome: ...
