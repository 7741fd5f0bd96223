"""The resolved study spec: (architecture, dataset) pairs × projections × seeds × axes, every
setting explicit (:class:`StudySpec`, :class:`PairSpec`, :class:`ProjectionEntry`), and how a
variant of the axes is labelled in tables and logs.

A study file becomes one by :func:`projbench.study.spec_resolve.resolve` (the TOML layout is
described there); :meth:`StudySpec.to_dict` is what a study folder stores, and resuming compares
it key by key (:func:`projbench.study.spec_files.spec_differences`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from projbench.errors import InvalidArgumentError


@dataclass(frozen=True)
class ProjectionEntry:
    """A projection as the study names it: ``label`` (unique in the study), registry ``name``
    and its options."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairSpec:
    """One (architecture, dataset) pair with its fully resolved settings.

    ``classes`` (empty: all) restricts the dataset to those labels (renumbered 0..k−1);
    ``theta0`` is the resolved θ₀ source table (None: a fresh initialisation; see
    :func:`projbench.transfer.resolve_theta0`)."""

    architecture: str
    dataset: str
    projections: list[str]
    search: dict[str, Any]
    recipe: dict[str, Any]
    run: dict[str, Any]
    classes: list[int] = field(default_factory=list)
    theta0: dict[str, Any] | None = None

    @property
    def task(self) -> str:
        """``mnist`` or, with a class filter, ``mnist[5-9]``."""
        from projbench.transfer import task_label

        return task_label(self.dataset, self.classes)

    @property
    def label(self) -> str:
        return f"{self.architecture}/{self.task}"

    @property
    def num_classes(self) -> int | None:
        """The model's outputs: len(classes), or None for the dataset's own classes."""
        return len(self.classes) or None

    def to_dict(self) -> dict[str, Any]:
        """As a study folder stores it: ``classes`` and ``theta0`` only when set (so the
        stored spec of a study without them is what it always was)."""
        out = asdict(self)
        if not self.classes:
            del out["classes"]
        if self.theta0 is None:
            del out["theta0"]
        return out


@dataclass
class StudySpec:
    name: str
    description: str
    notes: str
    seeds: list[int]
    projections: list[ProjectionEntry]
    pairs: list[PairSpec]
    axes: dict[str, list[Any]]
    direct: dict[str, Any]
    measure: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "notes": self.notes,
            "seeds": self.seeds,
            "projections": [asdict(p) for p in self.projections],
            "pairs": [p.to_dict() for p in self.pairs],
            "axes": self.axes,
            "direct": self.direct,
            "measure": self.measure,
        }

    def projection(self, label: str) -> ProjectionEntry:
        for p in self.projections:
            if p.label == label:
                return p
        raise InvalidArgumentError(f"no projection labelled {label!r} in the study")

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values ([{}] without axes), in declaration order."""
        if not self.axes:
            return [{}]
        keys = list(self.axes)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.axes[k] for k in keys))]

    def run_count(self) -> str:
        """Rough number of training runs (searches stop early, so bisection is an estimate)."""
        n_var = len(self.variants())
        total_lo = total_hi = 0
        for pair in self.pairs:
            sources = {theta0_label(v.get("theta0", pair.theta0)) for v in self.variants()} - {"scratch"}
            total_lo += len(sources)  # each pretraining or checkpoint, once
            total_hi += len(sources)
            n_base = 3 if pair.search["baseline"] == "global" else 1
            base = len(self.seeds) * n_base * n_var
            chains = len(pair.projections) * len(self.seeds) * n_var
            s = pair.search
            if s["method"] == "grid":
                per = len(s["grid"] or ())
                total_lo += base + chains * per
                total_hi += base + chains * per
            else:
                span = math.log(s["d_max"] / s["d_min"]) / math.log(1 + s["rtol"])
                rounds = max(1, math.ceil(math.log(max(span, 1.0001)) / math.log(s["points_per_round"] + 1)))
                total_lo += base + chains * 1
                total_hi += base + chains * (2 + rounds * s["points_per_round"])
            if self.direct:
                total_hi += (
                    int(self.direct.get("sizes", 0)) * len(self.direct.get("lrs", [1])) * len(self.seeds)
                )
                total_lo += (
                    int(self.direct.get("sizes", 0)) * len(self.direct.get("lrs", [1])) * len(self.seeds)
                )
        return f"{total_hi}" if total_lo == total_hi else f"{total_lo}-{total_hi}"


def variant_text(variant: dict[str, Any], theta0: str | None = None) -> str:
    """``lr=0.001, scaling=said, theta0=pretrain mnist[0-4]`` ('-' for no axes); ``theta0``, if
    given, is the label of the variant's resolved θ₀."""
    return ", ".join(f"{k}={axis_value_text(k, v, theta0)}" for k, v in variant.items()) or "-"


def axis_value_text(key: str, value: Any, theta0: str | None = None) -> Any:
    """How an axis value is shown: a θ₀ by ``theta0`` (its resolved label) or its own label
    (:func:`projbench.transfer.theta0_label`), anything else as it is."""
    if key != "theta0":
        return value
    return theta0 if theta0 is not None else theta0_label(value)


def theta0_label(value: Any) -> str:
    from projbench.transfer import theta0_label as label

    return label(value)


__all__ = [
    "PairSpec",
    "ProjectionEntry",
    "StudySpec",
    "axis_value_text",
    "theta0_label",
    "variant_text",
]
