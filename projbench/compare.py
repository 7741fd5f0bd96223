"""Compare two sets of results: per case, the ratio B/A of each measure with its uncertainty,
and the significant regressions and improvements flagged (as asv and pytest-benchmark do).

Cases are matched by what they measure — suite, projection, architecture, dataset and params
(the case key without the run settings), so a run can be compared with one of another commit,
machine, seed or option value. Several records of one case on one side are pooled.

For every measure both sides have raw samples of (speed: ``forward_s``, ``adjoint_s``,
``backward_s``, the per-call times in seconds):

* ``ratio`` = median(B) / median(A) — above 1 means B is slower (for times, larger is worse);
* a ``confidence`` (default 95 %) percentile bootstrap interval of that ratio: A and B are
  resampled independently with replacement ``n_boot`` times (seeded, so repeatable);
* the two-sided Mann–Whitney U test of "A and B samples come from one distribution"
  (:func:`scipy.stats.mannwhitneyu`), its p-value;
* the verdict: ``regression`` (ratio > 1) or ``improvement`` (ratio < 1) when p < ``alpha``,
  the interval excludes 1 and |ratio − 1| ≥ ``min_change`` (a practically relevant change);
  ``same`` when the interval lies within 1 ± ``min_change``; else ``unclear`` (e.g. three
  samples per side can never reach p < 0.05: MWU's smallest two-sided p for 3 vs 3 is 0.1).

Measures recorded without samples (memory bytes, or speed records written before samples were
kept) are compared as point values: the ratio, no interval, verdict ``changed`` or ``same``
against ``min_change`` — deterministic numbers need no test, noisy ones cannot get one.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from projbench.errors import InvalidArgumentError

#: point measures compared when a case has them in ``stats`` (name -> larger is worse)
POINT_MEASURES: dict[str, tuple[str, ...]] = {
    "speed": ("forward_ms", "adjoint_ms", "backward_ms"),
    "memory": ("state_bytes", "peak_step_bytes"),
}


#: raw sample series compared statistically: times (distortion ratios or losses are not costs)
TIME_SUFFIXES: tuple[str, ...] = ("_s", "_ms")


@dataclass
class Comparison:
    """One measure of one matched case."""

    suite: str
    projection: str | None
    architecture: str | None
    dataset: str | None
    params: dict[str, Any]
    measure: str
    a: float
    b: float
    ratio: float
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_a: int = 0
    n_b: int = 0
    verdict: str = "unclear"

    def label(self) -> str:
        extra = "/".join(x for x in (self.architecture, self.dataset) if x)
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return " ".join(x for x in (self.suite, str(self.projection), extra, params) if x)


@dataclass
class ComparisonResult:
    rows: list[Comparison] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0

    @property
    def regressions(self) -> list[Comparison]:
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def improvements(self) -> list[Comparison]:
        return [r for r in self.rows if r.verdict == "improvement"]

    def to_json(self) -> str:
        return json.dumps({"only_a": self.only_a, "only_b": self.only_b,
                           "comparisons": [asdict(r) for r in self.rows]}, indent=2, default=str)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def bootstrap_ratio_ci(a: list[float], b: list[float], *, confidence: float = 0.95,
                       n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b)/median(a), resampling a and b independently."""
    import numpy as np

    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma = np.median(rng.choice(xa, size=(n_boot, xa.size), replace=True), axis=1)
    mb = np.median(rng.choice(xb, size=(n_boot, xb.size), replace=True), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mb / ma
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def compare_samples(a: list[float], b: list[float], *, alpha: float = 0.05, confidence: float = 0.95,
                    min_change: float = 0.05, n_boot: int = 2000, seed: int = 0
                    ) -> tuple[float, float, float, float | None, str]:
    """(ratio, ci_low, ci_high, p_value, verdict) of samples b against a (see the module doc)."""
    from scipy.stats import mannwhitneyu

    a = [float(x) for x in a if isinstance(x, int | float) and math.isfinite(x)]
    b = [float(x) for x in b if isinstance(x, int | float) and math.isfinite(x)]
    if not a or not b:
        raise InvalidArgumentError("compare_samples needs finite samples on both sides")
    ma, mb = _median(a), _median(b)
    ratio = mb / ma if ma else math.inf
    low, high = bootstrap_ratio_ci(a, b, confidence=confidence, n_boot=n_boot, seed=seed)
    p: float | None = None
    if len(set(a) | set(b)) > 1:
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    significant = p is not None and p < alpha and not (low <= 1.0 <= high)
    if significant and abs(ratio - 1.0) >= min_change:
        verdict = "regression" if ratio > 1.0 else "improvement"
    elif 1.0 - min_change <= low and high <= 1.0 + min_change:
        verdict = "same"
    else:
        verdict = "unclear"
    return ratio, low, high, p, verdict


def _match_key(case: dict[str, Any]) -> str:
    return json.dumps([case.get("suite"), case.get("projection"), case.get("architecture"),
                       case.get("dataset"), case.get("params") or {}], sort_keys=True, default=str)


def _group(paths: list[str | os.PathLike[str]]) -> dict[str, list[dict[str, Any]]]:
    from projbench.results import read_runs

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in read_runs(paths):
        for case in run.cases:
            if case.get("status") == "ok":
                groups[_match_key(case)].append(case)
    return groups


def compare_runs(a_paths: str | os.PathLike[str] | list[str | os.PathLike[str]],
                 b_paths: str | os.PathLike[str] | list[str | os.PathLike[str]], *,
                 alpha: float = 0.05, confidence: float = 0.95, min_change: float = 0.05,
                 n_boot: int = 2000, seed: int = 0) -> ComparisonResult:
    """Compare every ``ok`` case of A with the same case of B (see the module docstring)."""
    if not 0 < alpha < 1 or not 0 < confidence < 1 or not 0 <= min_change < 1 or n_boot < 100:
        raise InvalidArgumentError(
            f"need 0 < alpha < 1, 0 < confidence < 1, 0 <= min_change < 1 and n_boot >= 100; got "
            f"alpha={alpha}, confidence={confidence}, min_change={min_change}, n_boot={n_boot}")

    def as_list(p: Any) -> list[str | os.PathLike[str]]:
        return [p] if isinstance(p, str | os.PathLike) else list(p)

    ga, gb = _group(as_list(a_paths)), _group(as_list(b_paths))
    result = ComparisonResult(only_a=len(ga.keys() - gb.keys()), only_b=len(gb.keys() - ga.keys()))
    for key in [k for k in ga if k in gb]:
        ca, cb = ga[key], gb[key]
        first = ca[0]
        base: dict[str, Any] = {"suite": first.get("suite"), "projection": first.get("projection"),
                                 "architecture": first.get("architecture"),
                                 "dataset": first.get("dataset"), "params": first.get("params") or {}}
        samples_a = _pooled(ca, "samples")
        samples_b = _pooled(cb, "samples")
        sampled: set[str] = set()
        for name in sorted(n for n in samples_a.keys() & samples_b.keys() if n.endswith(TIME_SUFFIXES)):
            ratio, low, high, p, verdict = compare_samples(
                samples_a[name], samples_b[name], alpha=alpha, confidence=confidence,
                min_change=min_change, n_boot=n_boot, seed=seed)
            result.rows.append(Comparison(**base, measure=name, a=_median(samples_a[name]),
                                          b=_median(samples_b[name]), ratio=ratio, ci_low=low,
                                          ci_high=high, p_value=p, n_a=len(samples_a[name]),
                                          n_b=len(samples_b[name]), verdict=verdict))
            sampled.add(name.removesuffix("_s"))
        for name in POINT_MEASURES.get(str(base["suite"]), ()):
            if name.removesuffix("_ms") in sampled:
                continue  # compared on its samples above
            va, vb = _point(ca, name), _point(cb, name)
            if va is None or vb is None:
                continue
            ratio = vb / va if va else (1.0 if vb == va else math.inf)
            verdict = "same" if abs(ratio - 1.0) < min_change else "changed"
            result.rows.append(Comparison(**base, measure=name, a=va, b=vb, ratio=ratio,
                                          n_a=len(ca), n_b=len(cb), verdict=verdict))
    return result


def _pooled(cases: list[dict[str, Any]], section: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for c in cases:
        for name, values in (c.get(section) or {}).items():
            if isinstance(values, list):
                out[name].extend(v for v in values if isinstance(v, int | float) and not isinstance(v, bool)
                                 and math.isfinite(v))
    return {k: v for k, v in out.items() if v}


def _point(cases: list[dict[str, Any]], name: str) -> float | None:
    values = [c["stats"][name] for c in cases if isinstance((c.get("stats") or {}).get(name), int | float)]
    values = [float(v) for v in values if math.isfinite(v)]
    return _median(values) if values else None
