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

**No verdict from untrustworthy timings.** A time measure gets ``unclear`` whatever its
p-value, with the reason in ``reason``, when either side has fewer than
:data:`MIN_VERDICT_SAMPLES` samples (a handful of samples against many can reach a tiny p from
one lucky draw) or when ``projbench run`` flagged either side's timing unstable (a spread too
wide, or a machine loaded while it was timed: ``{op}_unstable`` or ``loaded`` in its stats).

Times are shown as ``run`` shows them: milliseconds per call, with the same number format
(:func:`comparison_table`); the JSON keeps each measure in the unit its name ends with.
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
#: fewest samples per side that may give a time measure a verdict
MIN_VERDICT_SAMPLES = 5
#: rich styles of the verdicts in the table
VERDICT_STYLE = {"regression": "red", "improvement": "green", "same": "dim", "unclear": "yellow",
                 "changed": "magenta"}


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
    reason: str | None = None  # why a measure got no verdict ("unclear") though it was compared

    def label(self) -> str:
        extra = "/".join(x for x in (self.architecture, self.dataset) if x)
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return " ".join(x for x in (self.suite, str(self.projection), extra, params) if x)


@dataclass
class ComparisonResult:
    rows: list[Comparison] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0
    matched: int = 0  # cases in both A and B

    @property
    def regressions(self) -> list[Comparison]:
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def improvements(self) -> list[Comparison]:
        return [r for r in self.rows if r.verdict == "improvement"]

    def to_json(self) -> str:
        return json.dumps({"only_a": self.only_a, "only_b": self.only_b, "matched": self.matched,
                           "comparisons": [asdict(r) for r in self.rows]}, indent=2, default=str)

    def check_comparable(self) -> None:
        """Raise :class:`InvalidArgumentError` (one line) when nothing was compared: no case is in
        both A and B, or the cases in common share no measure."""
        if self.rows:
            return
        if not self.matched:
            raise InvalidArgumentError(
                f"no case is in both A and B ({self.only_a} only in A, {self.only_b} only in B): "
                "nothing to compare; compare runs of the same suites and projections")
        raise InvalidArgumentError(
            f"{self.matched} case(s) are in both A and B but share no measure: nothing to compare")


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
    result = ComparisonResult(only_a=len(ga.keys() - gb.keys()), only_b=len(gb.keys() - ga.keys()),
                              matched=len(ga.keys() & gb.keys()))
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
            n_a, n_b = len(samples_a[name]), len(samples_b[name])
            reason = distrust(name, ca, cb, n_a, n_b)
            result.rows.append(Comparison(**base, measure=name, a=_median(samples_a[name]),
                                          b=_median(samples_b[name]), ratio=ratio, ci_low=low,
                                          ci_high=high, p_value=p, n_a=n_a, n_b=n_b,
                                          verdict="unclear" if reason else verdict, reason=reason))
            sampled.add(name.removesuffix("_s"))
        for name in POINT_MEASURES.get(str(base["suite"]), ()):
            if name.removesuffix("_ms") in sampled:
                continue  # compared on its samples above
            va, vb = _point(ca, name), _point(cb, name)
            if va is None or vb is None:
                continue
            ratio = vb / va if va else (1.0 if vb == va else math.inf)
            verdict = "same" if abs(ratio - 1.0) < min_change else "changed"
            reason = _flag_reasons(name.removesuffix("_ms"), ca, cb) if name.endswith("_ms") else None
            result.rows.append(Comparison(**base, measure=name, a=va, b=vb, ratio=ratio,
                                          n_a=len(ca), n_b=len(cb),
                                          verdict="unclear" if reason else verdict, reason=reason))
    return result


def _op(measure: str) -> str:
    """``forward`` of ``forward_s`` / ``forward_ms``: the prefix of the stats flags."""
    for suffix in ("_ms", "_s"):
        if measure.endswith(suffix):
            return measure[: -len(suffix)]
    return measure


def _flag_reason(cases: list[dict[str, Any]], op: str) -> str | None:
    """Why ``run`` flagged the timing of ``op`` unstable in any of ``cases``, or None."""
    for case in cases:
        stats = case.get("stats") or {}
        if stats.get("loaded") is True:
            return f"timed on a loaded machine ({stats.get('load_per_cpu')} load per CPU)"
        if stats.get(f"{op}_unstable") is True:
            rel = stats.get(f"{op}_rel_iqr")
            spread = f", relative IQR {rel:.2f}" if isinstance(rel, int | float) else ""
            return f"flagged unstable by run{spread}"
    return None


def _flag_reasons(op: str, ca: list[dict[str, Any]], cb: list[dict[str, Any]]) -> str | None:
    reasons = [f"{side}: {why}" for side, cases in (("A", ca), ("B", cb))
               if (why := _flag_reason(cases, op)) is not None]
    return "; ".join(reasons) or None


def distrust(measure: str, ca: list[dict[str, Any]], cb: list[dict[str, Any]], n_a: int,
             n_b: int) -> str | None:
    """Why the time ``measure`` of cases ``ca`` (A) and ``cb`` (B), with ``n_a`` and ``n_b``
    samples, must get no verdict — too few samples, or a timing ``run`` flagged — or None."""
    reasons = []
    if min(n_a, n_b) < MIN_VERDICT_SAMPLES:
        reasons.append(f"too few samples ({n_a} in A, {n_b} in B; a verdict needs "
                       f"{MIN_VERDICT_SAMPLES} per side)")
    flagged = _flag_reasons(_op(measure), ca, cb)
    if flagged:
        reasons.append(flagged)
    return "; ".join(reasons) or None


def shown_measure(measure: str) -> tuple[str, float]:
    """(label, factor) that show ``measure`` in ``run``'s units: times in ms per call."""
    if measure.endswith("_s"):
        return f"{measure[:-2]} ms", 1e3
    if measure.endswith("_ms"):
        return f"{measure[:-3]} ms", 1.0
    return measure, 1.0


def comparison_table(result: ComparisonResult, confidence: float = 0.95) -> Any:
    """The rich table of ``projbench compare``: one row per case and measure, times in ms (as
    ``run`` prints them), the verdict followed by why there is none when it is ``unclear``."""
    from rich.markup import escape
    from rich.table import Table

    from projbench.report.run_files import format_value

    table = Table(title="B vs A", title_justify="left",
                  caption="ratio = median(B)/median(A) (> 1: B larger/slower); times in ms per call; "
                          "interval: bootstrap; p: Mann-Whitney U, two-sided", caption_justify="left")
    for header in ("case", "measure", "A median", "B median", "B/A", f"{confidence:.0%} CI", "p",
                   "n A/B", "verdict"):
        table.add_column(header, justify="left" if header in ("case", "measure", "verdict") else "right")
    for r in result.rows:
        label, factor = shown_measure(r.measure)
        ci = "-" if r.ci_low is None or r.ci_high is None else f"{r.ci_low:.3f}–{r.ci_high:.3f}"
        p = "-" if r.p_value is None else f"{r.p_value:.3g}"
        verdict = r.verdict if not r.reason else f"{r.verdict}: {r.reason}"
        style = VERDICT_STYLE.get(r.verdict, "white")
        table.add_row(escape(r.label()), label, format_value(r.a * factor), format_value(r.b * factor),
                      f"{r.ratio:.3f}", ci, p, f"{r.n_a}/{r.n_b}", f"[{style}]{escape(verdict)}[/]")
    return table


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
