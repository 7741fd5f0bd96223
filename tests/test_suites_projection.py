"""Tests of the distortion, speed and memory suites and the timing helper.

Tiny test projections are registered at runtime (a dense Gaussian one, a very sparse one, and
one that refuses large sizes), so these tests do not depend on the built-in projections.
References are closed forms (χ²_d/d moments, the JL formula) and direct computation.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch

import projbench
from projbench import manager
from projbench.errors import InvalidArgumentError, ResourceLimitError
from projbench.metrics.distortion import (
    DistortionSuite,
    chi2_ideal,
    default_eps,
    make_points,
    sketch_ratios,
)
from projbench.metrics.memory import MemorySuite, measure_step_memory
from projbench.metrics.speed import SpeedSuite, scaling_exponents, timing_stats
from projbench.metrics.timing import UNSTABLE_REL_IQR, TimingResult, count_unstable, time_callable
from projbench.suites import Case, RunSettings, Suite


class _TestDense(projbench.Projection):
    """i.i.d. N(0, 1/D) entries: the Gaussian ideal of the distortion suite."""

    name = "pbtest-dense"

    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32, budget_bytes=1 << 26):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if D * d * 4 > budget_bytes:
            raise ResourceLimitError(f"dense {D}x{d} exceeds budget_bytes={budget_bytes}")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", (torch.randn(D, d, generator=g) / math.sqrt(D)).to(dtype))

    def forward(self, theta):
        return theta @ self.matrix.T

    def adjoint(self, y):
        return y @ self.matrix


class _TestSparse(projbench.Projection):
    """Very sparse: entries ±1/√(sD) with probability s = 1/√D (Li et al. 2006); dense storage."""

    name = "pbtest-sparse"

    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        s = 1 / math.sqrt(D)
        mask = torch.rand(D, d, generator=g) < s
        signs = torch.randint(0, 2, (D, d), generator=g).float() * 2 - 1
        self.register_buffer("matrix", (mask * signs / math.sqrt(s * D)).to(dtype))

    def forward(self, theta):
        return theta @ self.matrix.T

    def adjoint(self, y):
        return y @ self.matrix


@pytest.fixture
def test_projections():
    plugin = types.ModuleType("pbtest_plugin")

    @projbench.hookimpl
    def projbench_register_projections(registry):
        registry.add(_TestDense)
        registry.add(_TestSparse)

    plugin.projbench_register_projections = projbench_register_projections
    manager.register_plugin(plugin, "pbtest")
    yield ["pbtest-dense", "pbtest-sparse"]
    manager.unregister_plugin("pbtest")


def _record(suite, case, outcome):
    return {"suite": suite.name, "projection": case.projection, "params": case.params,
            "status": outcome.status, "stats": outcome.stats, "samples": outcome.samples,
            "memory": outcome.memory}


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------
def test_time_callable_positive_and_ordered():
    x = torch.randn(64, 64)
    res = time_callable(lambda: x @ x, warmup=1, repeats=5, min_run_time=0.01)
    assert res.repeats >= 5 and res.inner >= 1
    assert all(s > 0 for s in res.samples)
    assert 0 < res.q1 <= res.median <= res.q3 and res.iqr >= 0
    assert res.rel_iqr == pytest.approx(res.iqr / res.median)
    assert res.unstable == (res.rel_iqr > UNSTABLE_REL_IQR)


class _FakeClock:
    """A virtual perf_counter: ``fn`` and ``setup`` advance it by fixed amounts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


def test_time_callable_setup_is_untimed(monkeypatch):
    """With a virtual clock (no wall-clock assertion): setup costs 1 s, the call 2 ms; every
    sample must be exactly the call's 2 ms, and setup runs once per call."""
    from projbench.metrics import timing

    clock = _FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    calls = {"setup": 0, "fn": 0}

    def setup():
        calls["setup"] += 1
        clock.advance(1.0)
        return "arg"

    def fn(arg):
        assert arg == "arg"
        calls["fn"] += 1
        clock.advance(0.002)

    res = time_callable(fn, setup=setup, warmup=2, repeats=4, min_run_time=0.0)
    assert res.inner == 1 and res.repeats == 4
    assert res.samples == pytest.approx([0.002] * 4)
    assert calls == {"setup": 6, "fn": 6}  # 2 warm-up + 4 timed


def test_time_callable_max_total_caps_slow_setup_calls(monkeypatch):
    from projbench.metrics import timing

    clock = _FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    res = time_callable(lambda _: clock.advance(0.02), setup=lambda: None, warmup=0, repeats=20,
                        min_run_time=0.0, max_total_s=0.05)
    assert res.repeats == 3  # 0.02, 0.04, 0.06 > 0.05: stop


def test_time_callable_calibrates_calls_per_sample():
    """A sample holds enough back-to-back calls to last min_sample_s; `repeats` are reached."""
    res = time_callable(lambda: sum(range(200)), warmup=0, repeats=12, min_run_time=0.0,
                        min_sample_s=1e-3)
    assert res.repeats >= 12 and res.inner > 1
    assert res.median * res.inner >= 0.5e-3  # calibrated to ≥ 1 ms per sample (slack for noise)


def test_time_callable_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        time_callable(lambda: None, repeats=0)
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        time_callable(lambda: None, repeatz=3)


@pytest.mark.parametrize(
    ("samples", "unstable"),
    [
        ([1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.0], False),   # 2 % spread
        ([1.0, 1.2, 0.9, 1.1, 0.95, 1.05, 1.0], False),      # IQR/median 0.15
        ([0.037, 0.04, 1.5, 0.035, 1.477, 0.036, 2.0], True),  # 37 ms median, IQR 1477 ms
        ([1.0, 1.0], True),                                  # too few samples to see a spread
        ([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0], True),    # bimodal: IQR/median 0.67
    ],
)
def test_unstable_flag_on_synthetic_samples(samples, unstable):
    import numpy as np

    res = TimingResult(samples=samples, inner=1, warmup=0)
    q1, med, q3 = np.percentile(samples, [25, 50, 75])  # linear interpolation = "inclusive"
    assert res.median == pytest.approx(med) and res.q1 == pytest.approx(q1) and res.q3 == pytest.approx(q3)
    assert res.rel_iqr == pytest.approx((q3 - q1) / med)
    assert res.unstable is unstable
    assert res.as_dict("fwd_")["fwd_unstable"] is unstable


def test_count_unstable_and_timing_stats():
    stable = TimingResult(samples=[1.0, 1.0, 1.01, 0.99], inner=1, warmup=0)
    noisy = TimingResult(samples=[1.0, 3.0, 1.0, 3.0], inner=1, warmup=0)
    s = timing_stats({"forward": stable, "adjoint": noisy})
    assert s["unstable"] is True and s["unstable_ops"] == "adjoint"
    assert s["forward_unstable"] is False and s["adjoint_rel_iqr"] == pytest.approx(1.0)
    assert s["forward_q1_ms"] <= s["forward_ms"] <= s["forward_q3_ms"]
    recs = [{"stats": s}, {"stats": timing_stats({"forward": stable})}, {"stats": "garbage"}, {}]
    assert count_unstable(recs) == 1


# ------------------------------------------------------------------------------------------
# distortion
# ------------------------------------------------------------------------------------------
def test_suites_satisfy_protocol():
    for suite in (DistortionSuite(), SpeedSuite(), MemorySuite()):
        assert isinstance(suite, Suite)
        assert suite.name and suite.description and suite.table_columns


def test_chi2_ideal_matches_closed_form():
    from scipy.stats import chi2

    d, eps = 50, 0.2
    ideal = chi2_ideal(d, eps)
    assert ideal["ideal_std"] == pytest.approx(math.sqrt(2 / d))
    assert ideal["ideal_std"] == pytest.approx(chi2(d).std() / d)
    # Monte-Carlo of χ²_d/d as an independent check of the tail formula
    g = torch.Generator().manual_seed(0)
    r = (torch.randn(50_000, d, generator=g, dtype=torch.float64) ** 2).mean(1)
    assert ((r - 1).abs() > eps).double().mean().item() == pytest.approx(ideal["ideal_frac_out"], abs=0.006)
    assert default_eps(128) == 0.25 and default_eps(10) == 0.5 and default_eps(100_000) == 0.05


def test_sketch_ratios_match_direct_computation(test_projections):
    P = projbench.make_projection("pbtest-dense", d=8, D=64, seed=3, dtype=torch.float64)
    X = make_points("gaussian", 5, 64, seed=1)
    norm_r, pair_r = sketch_ratios(P, X)
    Xd = X.double()
    S = math.sqrt(64 / 8) * P.matrix.T  # (d, D)
    direct_norm = ((Xd @ S.T) ** 2).sum(1) / (Xd**2).sum(1)
    torch.testing.assert_close(norm_r, direct_norm)
    direct_pairs = [((S @ (Xd[i] - Xd[j])) ** 2).sum() / ((Xd[i] - Xd[j]) ** 2).sum()
                    for i in range(5) for j in range(i + 1, 5)]
    torch.testing.assert_close(pair_r, torch.stack(direct_pairs))


def test_basis_points_are_distinct_unit_vectors():
    X = make_points("basis", 10, 32, seed=0)
    assert torch.equal(X.sum(1), torch.ones(10)) and torch.equal(X.sum(0).clamp(max=1), X.sum(0))


def test_distortion_cases_quick_grid():
    cases = DistortionSuite().cases(["a", "b"], RunSettings())
    assert len(cases) == 2 * 3
    assert {c.params["input"] for c in cases} == {"gaussian", "basis", "digits"}
    assert all(c.suite == "distortion" for c in cases)


def _run_distortion(proj, D, d, kind, n=48, eps=None):
    suite = DistortionSuite(eps=eps)
    case = Case("distortion", proj, {"D": D, "d": d, "input": kind, "n_points": n,
                                     "eps": eps or default_eps(d)})
    return suite, case, suite.run_case(case, RunSettings(seed=0))


def test_distortion_dense_gaussian_matches_chi2(test_projections):
    d = 64
    _, _, out = _run_distortion("pbtest-dense", 1024, d, "gaussian")
    s = out.stats
    assert out.status == "ok"
    assert s["n"] == 48 and s["pairs"] == 48 * 47 // 2
    assert abs(s["mean"] - 1) < 0.06
    assert s["std"] == pytest.approx(math.sqrt(2 / d), rel=0.3)
    assert s["ideal_std"] == pytest.approx(math.sqrt(2 / d))
    assert abs(s["frac_out"] - s["ideal_frac_out"]) < 0.1
    assert s["ks"] < 0.2
    eps = s["eps"]
    assert s["jl_k"] == math.ceil(4 * math.log(48) / (eps**2 / 2 - eps**3 / 3))
    assert 0 < len(out.samples["pair_ratios"]) <= 200 and len(out.samples["norm_ratios"]) <= 100
    assert s["max_dev"] >= max(abs(r - 1) for r in out.samples["pair_ratios"]) - 1e-12


def test_distortion_detects_sparse_failure_on_basis_inputs(test_projections):
    """A very sparse projection is fine on Gaussian inputs but not on basis vectors."""
    _, _, gauss = _run_distortion("pbtest-sparse", 1024, 64, "gaussian")
    _, _, basis = _run_distortion("pbtest-sparse", 1024, 64, "basis")
    _, _, dense_basis = _run_distortion("pbtest-dense", 1024, 64, "basis")
    assert gauss.stats["std_vs_ideal"] < 1.5
    assert basis.stats["std_vs_ideal"] > 2 and basis.stats["frac_out"] > 4 * basis.stats["ideal_frac_out"]
    assert dense_basis.stats["std_vs_ideal"] < 1.5


def test_distortion_digits_input(test_projections):
    _, _, out = _run_distortion("pbtest-dense", 256, 32, "digits", n=30)
    if "digits" not in projbench.list_plugins("datasets"):
        assert out.status == "skipped" and "digits" in out.error
    else:
        assert out.status == "ok" and abs(out.stats["mean"] - 1) < 0.3


def test_distortion_budget_refusal_is_skipped(test_projections):
    settings = RunSettings(options={"budget_bytes": 1000})
    case = Case("distortion", "pbtest-dense", {"D": 1024, "d": 16, "input": "gaussian",
                                               "n_points": 8, "eps": 0.5})
    out = DistortionSuite().run_case(case, settings)
    assert out.status == "skipped" and "budget" in out.error


# ------------------------------------------------------------------------------------------
# speed
# ------------------------------------------------------------------------------------------
def test_speed_run_case(test_projections):
    suite = SpeedSuite(grid={"D": (256, 1024), "d": (16,), "batch": (2,)})
    settings = RunSettings()
    cases = suite.cases(["pbtest-dense"], settings)
    assert [c.params["D"] for c in cases] == [256, 1024]
    records = []
    for case in cases:
        out = suite.run_case(case, settings)
        assert out.status == "ok"
        for op in ("forward", "adjoint", "backward"):
            st = out.stats
            assert st[f"{op}_ms"] > 0 and st[f"{op}_iqr_ms"] >= 0
            assert st[f"{op}_q1_ms"] <= st[f"{op}_ms"] <= st[f"{op}_q3_ms"]
            assert isinstance(st[f"{op}_unstable"], bool) and st[f"{op}_repeats"] >= 3
            raw = out.samples[f"{op}_s"]  # raw per-call samples, seconds
            assert len(raw) == min(st[f"{op}_repeats"], 200) and all(v > 0 for v in raw)
            assert st[f"{op}_ms"] == pytest.approx(1e3 * TimingResult(raw, 1, 0).median)
        assert out.stats["unstable"] == any(out.stats[f"{op}_unstable"] for op in ("forward", "adjoint",
                                                                                     "backward"))
        expected = 2 * case.params["D"] / out.stats["forward_ms"] / 1e3
        assert out.stats["forward_Mel_s"] == pytest.approx(expected)
        records.append(_record(suite, case, out))
    from matplotlib.figure import Figure

    assert isinstance(suite.figure(records), Figure)
    assert suite.figure([]) is None


def _speed_records(times, unstable=(), op="forward"):
    return [{"suite": "speed", "projection": "p", "status": "ok",
             "params": {"D": D, "d": 10, "batch": 1, "dtype": "float32", "device": "cpu"},
             "stats": {f"{op}_ms": t, f"{op}_unstable": D in unstable}} for D, t in times.items()]


def test_scaling_exponent_recovers_power_law():
    recs = [{"suite": "speed", "projection": "p", "status": "ok",
             "params": {"D": D, "d": 10, "batch": 1, "dtype": "float32", "device": "cpu"},
             "stats": {"forward_ms": 3e-4 * D**1.5, "adjoint_ms": 2.0 * D}} for D in (2**10, 2**12, 2**14)]
    fits = scaling_exponents(recs)
    fwd = fits[("p", 10, 1, "float32", "cpu", "forward")]
    assert fwd.alpha == pytest.approx(1.5) and fwd.stderr == pytest.approx(0, abs=1e-9)
    assert fwd.n == 3 and fwd.excluded == 0
    assert float(fits[("p", 10, 1, "float32", "cpu", "adjoint")]) == pytest.approx(1.0)
    assert ("p", 10, 1, "float32", "cpu", "backward") not in fits


def test_scaling_exponent_standard_error_matches_closed_form():
    """Noisy power law: slope and its standard error against the textbook OLS formulas."""
    import numpy as np

    Ds = [2**k for k in range(10, 17)]
    wiggle = [1.1, 0.9, 1.05, 0.97, 1.2, 0.85, 1.0]
    fit = scaling_exponents(_speed_records({D: 1e-3 * D * w for D, w in zip(Ds, wiggle)}))[
        ("p", 10, 1, "float32", "cpu", "forward")]
    x = np.log(Ds)
    y = np.log([1e-3 * D * w for D, w in zip(Ds, wiggle)])
    xc = x - x.mean()
    slope = (xc * (y - y.mean())).sum() / (xc**2).sum()
    resid = y - y.mean() - slope * xc
    se = math.sqrt((resid**2).sum() / (len(x) - 2) / (xc**2).sum())
    assert fit.alpha == pytest.approx(slope) and fit.stderr == pytest.approx(se)
    assert 0 < fit.stderr < 0.1


def test_scaling_exponent_leaves_out_unstable_points():
    """A noisy point (here 100× too slow at the smallest D) gave α = −1.33."""
    times = {2**12: 4.0 * 100, 2**14: 16.0, 2**16: 64.0, 2**18: 256.0}
    with_noise = scaling_exponents(_speed_records(times))[("p", 10, 1, "float32", "cpu", "forward")]
    assert with_noise.alpha < 0.5
    key = ("p", 10, 1, "float32", "cpu", "forward")
    fit = scaling_exponents(_speed_records(times, unstable={2**12}))[key]
    assert fit.alpha == pytest.approx(1.0) and fit.n == 3 and fit.excluded == 1
    two = scaling_exponents(_speed_records(times, unstable={2**12, 2**14}))[key]
    assert two.alpha == pytest.approx(1.0) and math.isnan(two.stderr)  # no residual, no s.e.
    # fewer than two stable points: no exponent at all
    assert scaling_exponents(_speed_records(times, unstable={2**12, 2**14, 2**16})) == {}


def test_speed_figure_has_error_bars_reference_slopes_and_ms(test_projections):
    times = {2**12: 4.0, 2**14: 16.0, 2**16: 64.0}
    recs = _speed_records(times, unstable={2**16})
    for r in recs:
        r["stats"].update(forward_q1_ms=r["stats"]["forward_ms"] * 0.9,
                          forward_q3_ms=r["stats"]["forward_ms"] * 1.2, unstable=r["params"]["D"] == 2**16)
    fig = SpeedSuite().figure(recs)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "median time per call (ms)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "O(D)" in labels and "O(D log D)" in labels
    assert "p d=10 b=1 (α=1.00 from 2 points, no s.e.)" in labels  # D=2^16 is unstable: left out
    from matplotlib.container import ErrorbarContainer

    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars.has_yerr
    assert "1 unstable" in fig.get_suptitle()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_speed_cuda_unavailable_is_skipped(test_projections):
    case = Case("speed", "pbtest-dense", {"D": 64, "d": 4, "batch": 1, "dtype": "float32", "device": "cuda"})
    out = SpeedSuite().run_case(case, RunSettings(device="cuda"))
    assert out.status == "skipped" and "CUDA" in out.error


def test_speed_oversized_case_is_skipped(test_projections):
    params = {"D": 1 << 40, "d": 4, "batch": 1, "dtype": "float32", "device": "cpu"}
    case = Case("speed", "pbtest-dense", params)
    out = SpeedSuite().run_case(case, RunSettings())
    assert out.status == "skipped" and "GiB" in out.error


# ------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["profiler", "rss"])
def test_memory_run_case(test_projections, method):
    suite = MemorySuite(grid={"D": (4096,), "d": (16,)}, cpu_method=method)
    settings = RunSettings()
    (case,) = suite.cases(["pbtest-dense"], settings)
    try:
        out = suite.run_case(case, settings)
    except InvalidArgumentError as exc:  # rss method where /proc/self/clear_refs is read-only
        pytest.skip(str(exc))
    s = out.stats
    assert out.status == "ok"
    assert s["state_bytes"] == 4096 * 16 * 4 == s["dense_bytes"]
    assert s["state_fraction"] == pytest.approx(1.0)
    if method == "profiler" and s["peak_method"] == "torch_profiler":
        # the step allocates at least the (1, D) output and its (1, d) gradient, and far less
        # than a copy of the matrix per call would need many times over
        assert 4096 * 4 <= s["peak_step_bytes"] < 10 * s["state_bytes"]
    else:
        assert s["peak_step_bytes"] >= 0
    assert out.memory["state_bytes"] == s["state_bytes"]
    from matplotlib.figure import Figure

    assert isinstance(suite.figure([_record(suite, case, out)]), Figure)


def test_memory_profiler_sees_large_temporary():
    """A step that allocates a 4 MiB temporary must show a peak of at least 4 MiB."""
    from projbench.metrics.memory import peak_cpu_profiler

    peak = peak_cpu_profiler(lambda: torch.ones(1 << 20).sum())
    assert peak >= 4 << 20


def test_measure_step_memory_grows_with_D(test_projections):
    small = measure_step_memory(projbench.make_projection("pbtest-dense", d=4, D=1 << 12))
    large = measure_step_memory(projbench.make_projection("pbtest-dense", d=4, D=1 << 16))
    if small["peak_method"] == "torch_profiler":
        assert large["peak_step_bytes"] > 8 * small["peak_step_bytes"]


def test_memory_budget_refusal_is_skipped(test_projections):
    settings = RunSettings(options={"budget_bytes": 1000})
    (case,) = MemorySuite(grid={"D": (1024,), "d": (16,)}).cases(["pbtest-dense"], settings)
    out = MemorySuite().run_case(case, settings)
    assert out.status == "skipped" and "budget" in out.error
    assert out.stats["dense_bytes"] == 1024 * 16 * 4


def test_distortion_figure(test_projections):
    """A colour per projection (the same in every panel), the χ²_d/d density and the ε band."""
    suite = DistortionSuite()
    records = []
    for proj in test_projections:
        for kind in ("gaussian", "basis"):
            suite_, case, out = _run_distortion(proj, 512, 32, kind, n=16)
            records.append(_record(suite_, case, out))
    from matplotlib.figure import Figure
    from scipy.stats import chi2

    fig = suite.figure(records)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # one (D, d) × two input kinds
    colours = {}
    for ax in fig.axes:
        assert "D=512, d=32, input:" in ax.get_title()
        assert ax.get_ylabel() == "density" and "‖S(x−y)‖²" in ax.get_xlabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert set(test_projections) <= set(labels)
        assert any(lab.startswith("JL band 1±ε (ε=0.5") for lab in labels)
        (ideal,) = [ln for ln in ax.get_lines() if ln.get_label() == "ideal χ²_d/d, d=32"]
        x, y = ideal.get_data()
        i = len(x) // 2
        assert y[i] == pytest.approx(32 * chi2.pdf(32 * x[i], 32))  # the density of χ²_32/32
        for patch in ax.patches:
            if patch.get_label() in test_projections:
                colours.setdefault(patch.get_label(), set()).add(patch.get_edgecolor())
    assert all(len(c) == 1 for c in colours.values()) and len(colours) == 2
    assert len(set().union(*colours.values())) == 2  # two projections, two colours
    assert suite.figure([]) is None


# ------------------------------------------------------------------------------------------
# every registered projection (built-ins and installed plugins) through the three suites
# ------------------------------------------------------------------------------------------
def _registered() -> list[str]:
    try:
        return [n for n in projbench.list_plugins("projections") if not n.startswith("pbtest")]
    except Exception:  # noqa: BLE001 - a broken plugin is reported by the manager tests
        return []


@pytest.mark.parametrize("name", _registered())
def test_registered_projection_through_suites(name):
    """Gaussian inputs: every projection's sketch is χ²_d/d-like; speed and memory run."""
    settings = RunSettings(seed=0)
    _, _, out = _run_distortion(name, 1024, 64, "gaussian", n=32)
    assert out.status == "ok", out.error
    assert abs(out.stats["mean"] - 1) < 0.15
    assert 0.5 < out.stats["std_vs_ideal"] < 2.0
    speed = SpeedSuite(grid={"D": (512,), "d": (8,), "batch": (2,)})
    (case,) = speed.cases([name], settings)
    res = speed.run_case(case, settings)
    assert res.status == "ok" and all(res.stats[f"{op}_ms"] > 0 for op in ("forward", "adjoint", "backward"))
    mem = MemorySuite(grid={"D": (512,), "d": (8,)})
    (case,) = mem.cases([name], settings)
    res = mem.run_case(case, settings)
    P = projbench.make_projection(name, d=8, D=512)
    assert res.status == "ok" and res.stats["state_bytes"] == P.memory_bytes() > 0
    assert res.stats["peak_step_bytes"] >= 0


# ------------------------------------------------------------------------------------------
# benchmarks (tiny sizes: they must run and write their files; no speed assertions)
# ------------------------------------------------------------------------------------------
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:  # `benchmarks` is a top-level package of the repository, not installed
    sys.path.insert(0, _REPO)

def test_naive_fwht_matches_scipy():
    from scipy.linalg import hadamard

    from benchmarks.bench_fwht import fwht_naive

    x = torch.randn(2, 3, 64, dtype=torch.float64)
    torch.testing.assert_close(fwht_naive(x), x @ torch.from_numpy(hadamard(64)).double())


def test_bench_fwht_writes_results(tmp_path):
    import json

    from benchmarks.bench_fwht import main

    main(["--quick", "--min-exp", "4", "--max-exp", "6", "--batches", "1,4", "--max-elements", "128",
          "--out-dir", str(tmp_path)])
    payload = json.loads((tmp_path / "bench_fwht_cpu.json").read_text())
    assert payload["machine"]["torch_threads"] >= 1 and payload["machine"]["torch"] == torch.__version__
    rows = payload["rows"]
    assert [(r["batch"], r["n"], r["status"]) for r in rows] == [
        (1, 16, "ok"), (1, 32, "ok"), (1, 64, "ok"), (4, 16, "ok"), (4, 32, "ok"), (4, 64, "skipped")]
    assert all(r["ours_s"] > 0 and r["naive_over_ours"] > 0 for r in rows if r["status"] == "ok")
    assert "| 2^5 |" in (tmp_path / "bench_fwht_cpu.md").read_text()


def test_bench_projections_writes_results(tmp_path, test_projections):
    import json

    from benchmarks.bench_projections import main

    main(["--quick", "--projections", "pbtest-dense", "--D-exps", "8,10", "--ds", "4,16",
          "--dense-budget-mib", "1e9", "--out-dir", str(tmp_path)])
    rows = json.loads((tmp_path / "bench_projections_cpu.json").read_text())["rows"]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["state_bytes"] == r["D"] * r["d"] * 4
        assert r["forward_ms"] > 0 and r["backward_ms"] > 0 and r["adjoint_ms"] > 0
