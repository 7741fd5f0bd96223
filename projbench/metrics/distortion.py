"""The ``distortion`` suite: how well the JL sketch of a projection preserves norms and distances.

For a projection P ∈ R^{D×d} the sketch is S = √(D/d)·Pᵀ : R^D → R^d (``P.sketch``), with
E‖Sx‖² = ‖x‖². For n points x_1…x_n ∈ R^D the suite computes

* norm ratios ``‖S x_i‖² / ‖x_i‖²`` (n values) and
* pairwise ratios ``‖S(x_i − x_j)‖² / ‖x_i − x_j‖²`` (n(n−1)/2 values; computed from the Gram
  matrices of X and SX in float64, which is exact by linearity of S),

and summarises the pairwise ratios r by mean, std, max |r − 1|, the fraction outside 1 ± ε and
the Kolmogorov–Smirnov distance of d·r to χ²_d (``norm_*`` keys hold the same for the norms).

**Gaussian ideal.** If S had i.i.d. N(0, 1/d) entries, ‖Sx‖²/‖x‖² ~ χ²_d/d exactly for every
fixed x: mean 1, std √(2/d), and P(|r − 1| > ε) = F(d(1−ε)) + 1 − F(d(1+ε)) with F the χ²_d
cdf (scipy). These are the ``ideal_*`` keys. **JL bound.** ``jl_k`` = ``jl_min_dim(n, ε)`` =
⌈4 ln n / (ε²/2 − ε³/3)⌉, the sketch size the JL lemma needs for all n(n−1)/2 distances to stay
within 1 ± ε; it is reported next to the d actually used.

**Inputs** (``params["input"]``), all seeded by the run's seed:

* ``gaussian`` — x ~ N(0, I_D): the easy case, every projection should look χ²-like;
* ``basis`` — standard basis vectors e_i (distinct random i): maximally sparse inputs, where a
  sparse projection fails (S e_i is one scaled row of Pᵀ with only ~d·s non-zeros) and the
  FJLT's randomised Hadamard preconditioning should not;
* ``digits`` — real data: flattened images of ``projbench.load_dataset("digits")`` (8×8
  scikit-learn digits, normalised), zero-padded or cropped to D. Skipped if that dataset is
  not registered.

**ε.** ``eps=None`` (default) picks ε = 2√(2/d) rounded to 0.01 and clipped to [0.05, 0.5]:
two ideal standard deviations, so the ideal fraction outside is ≈ 5 % for every d and the
measured fraction is comparable across d. Pass ``DistortionSuite(eps=0.1)`` for a fixed ε.

The number of points is ``n_points`` (quick: 64), reduced for large D so that X (n × D) stays
within ``max_points_bytes`` (the reduced n is in the ``n`` stat).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from projbench.errors import InvalidArgumentError, ResourceLimitError, UnknownNameError
from projbench.metrics.timing import build_projection, device_unavailable
from projbench.projection import jl_min_dim
from projbench.suites import Case, CaseOutcome, RunSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INPUT_KINDS: tuple[str, ...] = ("gaussian", "basis", "digits")
QUICK_GRID: tuple[tuple[int, int], ...] = ((1 << 12, 128),)
FULL_GRID: tuple[tuple[int, int], ...] = tuple(
    (D, d) for D in (1 << 12, 1 << 14, 1 << 16, 1 << 18) for d in (64, 256, 1024) if d < D
)
MAX_SAMPLES = 200


def default_eps(d: int) -> float:
    """ε = 2√(2/d) (two ideal standard deviations of χ²_d/d), rounded, clipped to [0.05, 0.5]."""
    return float(min(0.5, max(0.05, round(2 * math.sqrt(2 / d), 2))))


def chi2_ideal(d: int, eps: float) -> dict[str, float]:
    """Moments and tail of the Gaussian-sketch ratio r ~ χ²_d/d (closed forms, scipy)."""
    from scipy.stats import chi2

    return {
        "ideal_mean": 1.0,
        "ideal_std": math.sqrt(2.0 / d),
        "ideal_frac_out": float(chi2.cdf(d * (1 - eps), d) + chi2.sf(d * (1 + eps), d)),
        "ideal_q025": float(chi2.ppf(0.025, d) / d),
        "ideal_q975": float(chi2.ppf(0.975, d) / d),
    }


def ratio_stats(ratios: torch.Tensor, d: int, eps: float, prefix: str = "") -> dict[str, float]:
    """mean, std, max |r−1|, fraction with |r−1| > ε and KS distance of d·r to χ²_d."""
    from scipy.stats import chi2, kstest

    r = ratios.detach().to(torch.float64).cpu()
    dev = (r - 1).abs()
    ks = kstest(r.numpy() * d, chi2(d).cdf).statistic if r.numel() >= 2 else float("nan")
    return {
        f"{prefix}mean": float(r.mean()),
        f"{prefix}std": float(r.std()) if r.numel() >= 2 else 0.0,
        f"{prefix}max_dev": float(dev.max()),
        f"{prefix}frac_out": float((dev > eps).double().mean()),
        f"{prefix}ks": float(ks),
    }


def sketch_ratios(P: Any, X: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Norm and pairwise-distance ratios of the sketch ``P.sketch`` on the rows of X (n, D).

    Returns (norm_ratios (n,), pair_ratios (n(n−1)/2,)) in float64. Pairs with ‖x_i−x_j‖ = 0
    (duplicate points) are dropped. Gram matrices are accumulated in float64 over column blocks.
    """
    n, D = X.shape
    dev = P.device
    dtype = P.dtype
    Y = torch.cat([P.sketch(X[i : i + chunk].to(dev, dtype)).to(torch.float64).cpu()
                   for i in range(0, n, chunk)])
    gx = torch.zeros(n, n, dtype=torch.float64)
    step = max(1, (1 << 24) // max(n, 1))
    for j in range(0, D, step):
        xb = X[:, j : j + step].to(torch.float64)
        gx += xb @ xb.T
    gy = Y @ Y.T
    nx, ny = gx.diagonal(), gy.diagonal()
    keep = nx > 0
    norm_ratios = ny[keep] / nx[keep]
    iu = torch.triu_indices(n, n, offset=1)
    dx = nx[iu[0]] + nx[iu[1]] - 2 * gx[iu[0], iu[1]]
    dy = ny[iu[0]] + ny[iu[1]] - 2 * gy[iu[0], iu[1]]
    ok = dx > 1e-9 * float(nx.max()) if n > 0 else dx > 0
    return norm_ratios, dy[ok] / dx[ok]


def make_points(kind: str, n: int, D: int, seed: int, data_dir: str | None = None) -> torch.Tensor:
    """n input points (float32, shape (n, D)) of ``kind``; see the module docstring."""
    g = torch.Generator().manual_seed(seed + 7919)
    if kind == "gaussian":
        return torch.randn(n, D, generator=g)
    if kind == "basis":
        n = min(n, D)
        idx = torch.randperm(D, generator=g)[:n]
        X = torch.zeros(n, D)
        X[torch.arange(n), idx] = 1.0
        return X
    if kind == "digits":
        from projbench.datasets import load_dataset

        images, _ = load_dataset("digits", "train", data_dir)
        flat = images.reshape(images.shape[0], -1).to(torch.float32)
        rows = torch.randperm(flat.shape[0], generator=g)[: min(n, flat.shape[0])]
        flat = flat[rows]
        if flat.shape[1] >= D:
            return flat[:, :D].contiguous()
        return torch.nn.functional.pad(flat, (0, D - flat.shape[1]))
    raise InvalidArgumentError(f"unknown input kind {kind!r}; choose one of {', '.join(INPUT_KINDS)}")


class DistortionSuite:
    """JL distortion of each projection's sketch on Gaussian, basis-vector and real inputs."""

    name: ClassVar[str] = "distortion"
    description: ClassVar[str] = (
        "JL distortion of the sketch S=√(D/d)·Pᵀ: pairwise ratios ‖S(x−y)‖²/‖x−y‖² on Gaussian, "
        "basis-vector and digits inputs vs the Gaussian ideal χ²_d/d and the JL bound"
    )
    # D, d and n are in the case params (shown by the report); the rest fits 80 columns
    table_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("input", "input"),
        ("mean", "mean"),
        ("std", "std"),
        ("ideal std", "ideal_std"),
        ("max|r-1|", "max_dev"),
        ("out 1±ε", "frac_out"),
        ("ideal out", "ideal_frac_out"),
        ("JL k", "jl_k"),
    )

    def __init__(
        self,
        eps: float | None = None,
        n_points: int | None = None,
        inputs: tuple[str, ...] = INPUT_KINDS,
        grid: tuple[tuple[int, int], ...] | None = None,
        max_points_bytes: int = 256 << 20,
    ) -> None:
        if eps is not None and not 0 < eps < 1:
            raise InvalidArgumentError(f"eps must lie in (0, 1), got {eps}")
        unknown = set(inputs) - set(INPUT_KINDS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown input kind(s) {sorted(unknown)}; choose from {', '.join(INPUT_KINDS)}"
            )
        self.eps = eps
        self.n_points = n_points
        self.inputs = tuple(inputs)
        self.grid = grid
        self.max_points_bytes = max_points_bytes

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]:
        """One case per projection × (D, d) × input kind (quick: D=4096, d=128, n=64)."""
        grid = self.grid or (QUICK_GRID if settings.quick else FULL_GRID)
        n = self.n_points or (64 if settings.quick else 256)
        return [
            Case(self.name, proj, {"D": D, "d": d, "input": kind, "n_points": n,
                                   "eps": self.eps if self.eps is not None else default_eps(d)})
            for proj in projections
            for D, d in grid
            for kind in self.inputs
        ]

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        p = case.params
        D, d, kind, eps = int(p["D"]), int(p["d"]), str(p["input"]), float(p["eps"])
        reason = device_unavailable(settings.device)
        if reason:
            return CaseOutcome(stats={}, status="skipped", error=reason)
        n = min(int(p["n_points"]), max(8, self.max_points_bytes // (4 * D)))
        try:
            X = make_points(kind, n, D, settings.seed, settings.data_dir)
        except UnknownNameError as exc:
            return CaseOutcome(stats={}, status="skipped", error=f"input {kind!r} unavailable: {exc}")
        try:
            P = build_projection(case.projection, d, D, seed=settings.seed, device=settings.device,
                                 dtype=settings.torch_dtype, options=settings.options)
        except ResourceLimitError as exc:
            return CaseOutcome(stats={}, status="skipped", error=str(exc))
        with torch.no_grad():
            norm_r, pair_r = sketch_ratios(P, X)
        n = X.shape[0]
        stats: dict[str, Any] = {"input": kind, "D": D, "d": d, "n": n, "pairs": int(pair_r.numel()),
                                 "eps": eps}
        stats.update(ratio_stats(pair_r, d, eps))
        stats.update(ratio_stats(norm_r, d, eps, prefix="norm_"))
        stats.update(chi2_ideal(d, eps))
        stats["std_vs_ideal"] = stats["std"] / stats["ideal_std"]
        stats["jl_k"] = jl_min_dim(max(n, 2), eps)
        stats["d_over_jl_k"] = d / stats["jl_k"]
        g = torch.Generator().manual_seed(settings.seed + 1)
        samples = {
            "pair_ratios": _subsample(pair_r, MAX_SAMPLES, g),
            "norm_ratios": _subsample(norm_r, MAX_SAMPLES // 2, g),
        }
        bad = not all(math.isfinite(v) for v in (stats["mean"], stats["std"]))
        return CaseOutcome(stats=stats, samples=samples, status="diverged" if bad else "ok",
                           error="non-finite sketch ratios" if bad else None)

    def figure(self, records: list[dict[str, Any]]) -> Figure | None:
        """Histograms (densities) of the pairwise ratios r = ‖S(x−y)‖²/‖x−y‖², one colour per
        projection (the same in every panel), one panel per (D, d) and input kind, over the
        ideal χ²_d/d density (black; the density of r for a Gaussian sketch is
        d·f_{χ²_d}(d·r)) and the JL band 1 ± ε (shaded)."""
        from matplotlib.figure import Figure
        from scipy.stats import chi2

        recs = [r for r in records if r.get("suite", self.name) == self.name
                and r.get("status") == "ok" and isinstance(r.get("samples"), dict)
                and r["samples"].get("pair_ratios") and isinstance(r.get("params"), dict)]
        if not recs:
            return None

        def kind_order(k: str) -> int:
            return INPUT_KINDS.index(k) if k in INPUT_KINDS else len(INPUT_KINDS)

        sizes = sorted({(int(r["params"]["D"]), int(r["params"]["d"])) for r in recs})[:4]
        kinds = sorted({str(r["params"].get("input", "?")) for r in recs}, key=kind_order)
        projections = sorted({str(r["projection"]) for r in recs})
        colour = {p: f"C{i % 10}" for i, p in enumerate(projections)}
        fig = Figure(figsize=(4.6 * len(kinds), 3.6 * len(sizes)), layout="constrained")
        axes = fig.subplots(len(sizes), len(kinds), squeeze=False)
        for row, (D, d) in enumerate(sizes):
            for col, kind in enumerate(kinds):
                ax = axes[row][col]
                sel = [r for r in recs if (int(r["params"]["D"]), int(r["params"]["d"])) == (D, d)
                       and str(r["params"].get("input", "?")) == kind]
                eps = float(sel[0]["params"].get("eps", default_eps(d))) if sel else default_eps(d)
                ideal = chi2_ideal(d, eps)
                lo = min(ideal["ideal_q025"], 1 - eps) - 0.1
                hi = max(ideal["ideal_q975"], 1 + eps) + 0.1
                for r in sel:
                    vals = [float(v) for v in r["samples"]["pair_ratios"] if math.isfinite(float(v))]
                    lo, hi = min(lo, *vals), max(hi, *vals)
                grid = [lo + (hi - lo) * i / 200 for i in range(201)]
                ax.axvspan(1 - eps, 1 + eps, color="tab:green", alpha=0.12, label=f"JL band 1±ε (ε={eps:g})")
                ax.plot(grid, [d * float(chi2.pdf(d * x, d)) if x > 0 else 0.0 for x in grid], color="k",
                        lw=1.5, label=f"ideal χ²_d/d, d={d}")
                bins = [lo + (hi - lo) * i / 30 for i in range(31)]
                shown: set[str] = set()
                for r in sel:  # several runs of one projection: one colour, one legend entry
                    proj = str(r["projection"])
                    ax.hist(r["samples"]["pair_ratios"], bins=bins, density=True, histtype="step",
                            lw=1.6, color=colour[proj], label=proj if proj not in shown else "_nolegend_")
                    shown.add(proj)
                ax.axvline(1.0, color="k", lw=0.6, ls=":")
                ax.set_title(f"D={D:,}, d={d}, input: {kind}", fontsize=10)
                ax.set_xlabel("pairwise ratio ‖S(x−y)‖² / ‖x−y‖²")
                ax.set_ylabel("density")
                ax.legend(fontsize=7, loc="upper right")
        fig.suptitle("JL distortion of the sketch S = √(D/d)·Pᵀ: measured ratios vs the Gaussian ideal")
        return fig


def _subsample(values: torch.Tensor, k: int, g: torch.Generator) -> list[float]:
    v = values.detach().to(torch.float64).cpu()
    if v.numel() > k:
        v = v[torch.randperm(v.numel(), generator=g)[:k]]
    return [float(x) for x in v]


__all__ = ["INPUT_KINDS", "DistortionSuite", "chi2_ideal", "default_eps",
           "make_points", "ratio_stats", "sketch_ratios"]
