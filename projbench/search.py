"""The d_int90 search, as pure state machines (no torch, no I/O): what d to train next, and what
the trained accuracies say.

Definitions (Li et al. 2018): the target accuracy is ``threshold`` × the baseline accuracy;
d_int90 is the smallest d whose subspace test accuracy reaches the target. A diverged run, or a
non-finite accuracy, counts as *not passing*.

A search is driven from outside (by :mod:`projbench.study.engine`, one search per chain
(pair, projection, seed)): ``propose()`` returns the d values of the next round — every one of
them can be trained concurrently — then ``observe(d, accuracy, passed)`` is called once per
proposed d (in any order), and the next ``propose()`` uses them all. ``done`` ends it and
``crossing()`` gives the answer. Because a round is only advanced once all its results are in,
the sequence of d values depends only on the results, never on completion order or on the
number of workers: the same study gives the same d_int90 under any executor.

* :class:`KSectionSearch` — parallel k-section on log d in [d_min, d_max]. Round 0 trains d_max
  (and d_min when k ≥ 2); with k = 1 round 1 trains d_min. Then, with lo the largest failing d
  below hi, the smallest passing d, each round trains k points that split [log lo, log hi] into
  k + 1 equal parts (rounded, distinct, strictly inside), until hi ≤ lo·(1 + rtol) or
  hi − lo ≤ 1. k = 1 is classic bisection at d = round(√(lo·hi)). A k-section round shrinks the
  log-interval by k + 1 (bisection: 2), so k points per round need about
  log(k+1)/log 2 times fewer rounds, at k/log2(k+1) times the runs.
* :class:`GridSearch` — Li et al.'s grid: every grid d in one round (fully parallel).

The **interpolated** crossing is the linear interpolation of accuracy against log d between the
largest evaluated d below the crossing and the crossing itself:
log d* = log d_lo + (t − a_lo)/(a_hi − a_lo)·(log d_hi − log d_lo), clamped to [d_lo, d_hi].
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from projbench.errors import InvalidArgumentError

SEARCH_METHODS = ("bisect", "grid")
#: Li et al.-style grid of subspace dimensions (log-spaced, 10 … 10 000)
DEFAULT_GRID: tuple[int, ...] = (10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)


def _finite_number(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidArgumentError(f"{what} must be a finite number, got {value!r}")
    return out


def validate_search(
    method: str,
    *,
    d_min: int,
    d_max: int,
    rtol: float,
    threshold: float,
    grid: Sequence[int] | None,
    points_per_round: int = 1,
) -> None:
    """Refuse settings that would make the search meaningless (NaN, empty, inverted ranges)."""
    if method not in SEARCH_METHODS:
        raise InvalidArgumentError(f"search must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")
    thr = _finite_number(threshold, "threshold")
    if not 0 < thr <= 1:
        raise InvalidArgumentError(f"threshold must lie in (0, 1], got {threshold}")
    if method == "bisect":
        if not (isinstance(d_min, int) and isinstance(d_max, int) and 1 <= d_min < d_max):
            raise InvalidArgumentError(
                f"need integers 1 <= d_min < d_max for bisection, got d_min={d_min}, d_max={d_max}"
            )
        if not _finite_number(rtol, "rtol") > 0:
            raise InvalidArgumentError(f"rtol must be > 0, got {rtol}")
        if not (isinstance(points_per_round, int) and points_per_round >= 1):
            raise InvalidArgumentError(f"points_per_round must be an integer >= 1, got {points_per_round!r}")
    else:
        if not grid or any(not isinstance(d, int) or d < 1 for d in grid):
            raise InvalidArgumentError(f"grid must be a non-empty list of positive integers, got {grid!r}")


def interpolate_crossing(d_lo: int, a_lo: float, d_hi: int, a_hi: float, target: float) -> float:
    """d* where the line through (log d_lo, a_lo), (log d_hi, a_hi) reaches ``target``."""
    if not (math.isfinite(a_lo) and math.isfinite(a_hi)) or a_hi <= a_lo:
        return float(d_hi)
    t = min(max((target - a_lo) / (a_hi - a_lo), 0.0), 1.0)
    return float(math.exp(math.log(d_lo) + t * (math.log(d_hi) - math.log(d_lo))))


@dataclass
class Crossing:
    """Outcome of one search: ``d`` is None when no evaluated d passed ("not reached")."""

    d: int | None
    interpolated: float | None
    evaluated: dict[int, float] = field(default_factory=dict)  # d -> test accuracy
    diverged: list[int] = field(default_factory=list)

    @property
    def best_accuracy(self) -> float | None:
        finite = [a for a in self.evaluated.values() if math.isfinite(a)]
        return max(finite) if finite else None

    @property
    def bracket(self) -> tuple[int | None, int | None]:
        """(largest evaluated d below the crossing — it failed —, the crossing d); (None, d)
        when the crossing is the smallest d evaluated; (None, None) when not reached."""
        if self.d is None:
            return None, None
        below = [d for d in self.evaluated if d < self.d]
        return (max(below) if below else None), self.d


def bracket_interval(crossings: Iterable[Crossing]) -> tuple[int | None, int | None]:
    """The interval of d_int90 over seeds: from the smallest bracket lower end (a seed's
    crossing itself when nothing below it was evaluated) to the largest crossing; (None, None)
    when no seed reached the target."""
    brackets = [c.bracket for c in crossings if c.d is not None]
    if not brackets:
        return None, None
    lows = [lo if lo is not None else hi for lo, hi in brackets]
    return min(x for x in lows if x is not None), max(hi for _, hi in brackets if hi is not None)


def search_bracket(passed: Mapping[int, bool]) -> tuple[int | None, int | None]:
    """Where a search stands: (the largest failing d below the smallest passing d, that passing
    d). The first is None while nothing below it has failed, the second while nothing has
    passed (then the first is the largest failing d)."""
    passing = [d for d, ok in passed.items() if ok]
    hi = min(passing) if passing else None
    failing = [d for d, ok in passed.items() if not ok and (hi is None or d < hi)]
    return (max(failing) if failing else None), hi


def crossing_from(
    evaluated: dict[int, float], passed: dict[int, bool], diverged: Iterable[int], target: float
) -> Crossing:
    """Smallest passing d, and the log-linear interpolation from the largest d below it."""
    evaluated = dict(sorted(evaluated.items()))
    div = sorted(set(diverged))
    passing = sorted(d for d, ok in passed.items() if ok)
    if not passing:
        return Crossing(None, None, evaluated, div)
    d_hi = passing[0]
    below = [d for d in evaluated if d < d_hi]
    if not below:  # the crossing is the smallest d tried: nothing to interpolate from
        return Crossing(d_hi, float(d_hi), evaluated, div)
    d_lo = max(below)
    a_lo = evaluated[d_lo] if math.isfinite(evaluated[d_lo]) else 0.0
    return Crossing(d_hi, interpolate_crossing(d_lo, a_lo, d_hi, evaluated[d_hi], target), evaluated, div)


class Search(Protocol):
    """What the engine drives: rounds of d values, then one observation per d."""

    target: float
    passed: dict[int, bool]  # d -> whether its run reached the target

    @property
    def done(self) -> bool: ...

    def propose(self) -> list[int]: ...

    def observe(self, d: int, accuracy: float, diverged: bool = False) -> None: ...

    def crossing(self) -> Crossing: ...


class _SearchBase:
    def __init__(self, target: float) -> None:
        self.target = float(target)
        self.evaluated: dict[int, float] = {}
        self.passed: dict[int, bool] = {}
        self.diverged: list[int] = []
        self._round: list[int] = []

    def observe(self, d: int, accuracy: float, diverged: bool = False) -> None:
        acc = float(accuracy)
        self.evaluated[d] = acc
        self.passed[d] = (not diverged) and math.isfinite(acc) and acc >= self.target
        if diverged:
            self.diverged.append(d)

    def _round_complete(self) -> bool:
        return all(d in self.passed for d in self._round)

    def crossing(self) -> Crossing:
        return crossing_from(self.evaluated, self.passed, self.diverged, self.target)


class GridSearch(_SearchBase):
    """Every grid point in one round."""

    def __init__(self, target: float, grid: Sequence[int]) -> None:
        super().__init__(target)
        self.grid = sorted({int(d) for d in grid})
        self._proposed = False

    @property
    def done(self) -> bool:
        return self._proposed and self._round_complete()

    def propose(self) -> list[int]:
        if self._proposed:
            return []
        self._proposed = True
        self._round = list(self.grid)
        return list(self._round)


class KSectionSearch(_SearchBase):
    """Parallel k-section on log d (module docstring); ``k = 1`` is bisection."""

    def __init__(self, target: float, d_min: int, d_max: int, rtol: float, k: int = 1) -> None:
        super().__init__(target)
        self.d_min, self.d_max, self.rtol, self.k = int(d_min), int(d_max), float(rtol), int(k)
        self._done = False
        self._stage = 0  # 0: nothing proposed; 1: ends proposed; 2: interior rounds

    @property
    def done(self) -> bool:
        return self._done

    def _bracket(self) -> tuple[int, int] | None:
        lo, hi = search_bracket(self.passed)
        return (lo, hi) if lo is not None and hi is not None else None

    def _interior(self, lo: int, hi: int) -> list[int]:
        if hi <= lo * (1 + self.rtol) or hi - lo <= 1:
            return []
        a, b = math.log(lo), math.log(hi)
        points = []
        for i in range(1, self.k + 1):
            d = round(math.exp(a + (b - a) * i / (self.k + 1)))
            d = min(max(d, lo + 1), hi - 1)
            if d not in points and d not in self.passed:
                points.append(d)
        return points

    def propose(self) -> list[int]:
        if self._done or not self._round_complete():
            return []
        if self._stage == 0:
            self._stage = 1
            self._round = [self.d_max] if self.k == 1 else [self.d_max, self.d_min]
            return list(self._round)
        if not self.passed.get(self.d_max, False):  # not reached within d_max
            self._done = True
            return []
        if self.d_min not in self.passed:
            self._round = [self.d_min]
            return list(self._round)
        if self.passed[self.d_min]:  # d_min already passes
            self._done = True
            return []
        bracket = self._bracket()
        self._round = self._interior(*bracket) if bracket else []
        if not self._round:
            self._done = True
        return list(self._round)


def make_search(
    method: str,
    target: float,
    *,
    d_min: int = 10,
    d_max: int = 10000,
    rtol: float = 0.1,
    grid: Sequence[int] | None = None,
    points_per_round: int = 1,
) -> Search:
    """The search ``method`` (``bisect`` or ``grid``) towards ``target``."""
    if method == "grid":
        return GridSearch(target, grid or DEFAULT_GRID)
    if method == "bisect":
        return KSectionSearch(target, d_min, d_max, rtol, points_per_round)
    raise InvalidArgumentError(f"search must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")


def run_search(search: Search, accuracy_of: Any) -> Crossing:
    """Drive ``search`` sequentially with ``accuracy_of(d) -> (accuracy, diverged)``."""
    while True:
        batch = search.propose()
        if not batch:
            break
        for d in batch:
            acc, div = accuracy_of(d)
            search.observe(d, acc, div)
    return search.crossing()


@dataclass
class SpreadStats:
    """Mean, sample std (ddof = 1; None with fewer than two values) and n of some values."""

    n: int
    mean: float | None
    std: float | None
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> SpreadStats:
        v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
        if not v:
            return cls(0, None, None)
        return cls(len(v), statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else None, min(v), max(v))

    @property
    def cv(self) -> float | None:
        """Coefficient of variation std/mean."""
        if self.std is None or not self.mean:
            return None
        return self.std / self.mean

    def format(self, digits: int = 0) -> str:
        """``"mean ± std (n)"``; the std is ``n/a`` with one value."""
        if self.mean is None:
            return "-"
        std = "n/a" if self.std is None else f"{self.std:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {std} (n={self.n})"


__all__ = [
    "DEFAULT_GRID",
    "SEARCH_METHODS",
    "Crossing",
    "GridSearch",
    "KSectionSearch",
    "Search",
    "SpreadStats",
    "bracket_interval",
    "crossing_from",
    "interpolate_crossing",
    "make_search",
    "run_search",
    "search_bracket",
    "validate_search",
]
