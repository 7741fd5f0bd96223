"""Contract checks any projection plugin can run on itself.

A plugin author writes one test::

    from projbench.testing import run_all_checks

    def test_my_projection_contract():
        run_all_checks("myproj", d=7, D=50)        # or the class itself, plus its options

Each ``check_*`` function raises :class:`ContractError` (an ``AssertionError``) with a message
naming the projection, the sizes and what went wrong. The checks:

* shapes for batch dims (), (n,), (a, b) in both directions;
* forward == ``to_dense()`` @ θ and adjoint == ``to_dense()``ᵀ @ y (the exact transpose);
* linearity, and the adjoint identity ⟨Pθ, y⟩ = ⟨θ, Pᵀy⟩;
* autograd: ∇_θ ⟨Pθ, y⟩ = Pᵀy (custom backward passes included);
* same seed ⇒ same matrix, different seeds ⇒ different matrices;
* float64 and float32 agree; ``state_dict`` round trip; ``memory_bytes() > 0``;
* wrong-shape inputs raise :class:`~projbench.errors.InvalidArgumentError`;
* E‖P e_j‖² = 1: the mean squared column norm over a fixed set of seeds lies within
  z standard errors of 1 (the standard error estimated from the per-seed means).
* optionally ``.to(device)`` gives the same matrix on another device.

JL statistics (:func:`check_jl`, not part of :func:`run_all_checks` because it builds hundreds
of instances): for a fixed input x the ratio r_s = ‖S_s x‖²/‖x‖² of the sketch
S_s = √(D/d)·P_sᵀ over a fixed set of seeds s must have mean 1 (within z standard errors) and
must not exceed 1 ± ε more often than a Gaussian sketch would (r ~ χ²_d/d): the count of seeds
outside is compared with the (1 − α) binomial quantile at ``slack`` × the ideal probability.
The seeds are fixed (never chosen by a property-based test), so the check is deterministic;
with the defaults (1000 seeds, ε = 1.7·√(2/d), slack 1.25, α = 10⁻³) a sketch with twice the
ideal variance (r ~ χ²_{d/2}/(d/2)) passes with probability ≈ 10⁻¹⁰ (d = 16…256), while one
with the ideal tail fails with probability ≈ 10⁻⁸ and one with 1.1× the ideal variance ≈ 10⁻⁴.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from projbench.errors import InvalidArgumentError
from projbench.projection import Projection

#: (atol, rtol) for float64 algebra and for float32-vs-float64 agreement
TOL64 = (1e-9, 1e-9)
TOL32 = (1e-4, 1e-3)


class ContractError(AssertionError):
    """A projection violates the contract of :class:`projbench.Projection`."""


def resolve(name_or_cls: str | type[Projection]) -> type[Projection]:
    """The projection class registered as ``name_or_cls`` (or the class itself)."""
    if isinstance(name_or_cls, str):
        from projbench.manager import get_registry

        cls: type[Projection] = get_registry("projections").get(name_or_cls)
        return cls
    return name_or_cls


def build(
    name_or_cls: str | type[Projection],
    d: int,
    D: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    **options: Any,
) -> Projection:
    """Construct a projection the way :func:`projbench.make_projection` does."""
    cls = resolve(name_or_cls)
    proj = cls(d, D, seed=seed, device=device, dtype=dtype, **options)
    return proj.to(device) if device is not None else proj


def _label(p: Projection) -> str:
    return f"{type(p).__name__}(d={p.d}, D={p.D}, seed={p.seed})"


def _close(a: torch.Tensor, b: torch.Tensor, tol: tuple[float, float], what: str, p: Projection) -> None:
    atol, rtol = tol
    scale = float(b.abs().max()) if b.numel() else 0.0
    err = float((a - b).abs().max()) if a.numel() else 0.0
    if not err <= atol + rtol * scale:
        raise ContractError(f"{_label(p)}: {what}: max |difference| {err:.3g} (scale {scale:.3g})")


def _randn(shape: Sequence[int], p: Projection, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype=p.dtype, device=p.device)


# ------------------------------------------------------------------------------------------
# Checks on one instance
# ------------------------------------------------------------------------------------------
def check_shapes(p: Projection, batch_shapes: Sequence[tuple[int, ...]] = ((), (3,), (2, 3))) -> None:
    """forward: (*b, d) -> (*b, D), adjoint: (*b, D) -> (*b, d), dtype and device preserved."""
    for b in batch_shapes:
        y = p(_randn((*b, p.d), p, 1))
        if tuple(y.shape) != (*b, p.D) or y.dtype != p.dtype or y.device != p.device:
            raise ContractError(f"{_label(p)}: forward of shape {(*b, p.d)} gave {tuple(y.shape)} {y.dtype}")
        x = p.adjoint(_randn((*b, p.D), p, 2))
        if tuple(x.shape) != (*b, p.d) or x.dtype != p.dtype or x.device != p.device:
            raise ContractError(f"{_label(p)}: adjoint of shape {(*b, p.D)} gave {tuple(x.shape)} {x.dtype}")


def check_dense_consistency(p: Projection, tol: tuple[float, float] = TOL64) -> None:
    """forward(θ) == M θ and adjoint(y) == Mᵀ y with M = ``to_dense()`` of shape (D, d)."""
    m = p.to_dense()
    if tuple(m.shape) != (p.D, p.d):
        raise ContractError(f"{_label(p)}: to_dense() has shape {tuple(m.shape)}, expected {(p.D, p.d)}")
    theta = _randn((5, p.d), p, 3)
    y = _randn((5, p.D), p, 4)
    _close(p(theta), theta @ m.T, tol, "forward(θ) != to_dense() @ θ", p)
    _close(p.adjoint(y), y @ m, tol, "adjoint(y) != to_dense().T @ y (not the exact transpose)", p)


def check_linearity(p: Projection, tol: tuple[float, float] = TOL64) -> None:
    """P(aθ₁ + bθ₂) = aPθ₁ + bPθ₂, and likewise for Pᵀ."""
    a, b = 0.7, -1.9
    t1, t2 = _randn((2, p.d), p, 5), _randn((2, p.d), p, 6)
    _close(p(a * t1 + b * t2), a * p(t1) + b * p(t2), tol, "forward is not linear", p)
    y1, y2 = _randn((2, p.D), p, 7), _randn((2, p.D), p, 8)
    _close(p.adjoint(a * y1 + b * y2), a * p.adjoint(y1) + b * p.adjoint(y2), tol, "adjoint is not linear", p)


def check_adjoint_identity(p: Projection, tol: tuple[float, float] = TOL64) -> None:
    """⟨Pθ, y⟩ = ⟨θ, Pᵀy⟩ for random θ, y."""
    theta, y = _randn((4, p.d), p, 9), _randn((4, p.D), p, 10)
    lhs = (p(theta) * y).sum(-1)
    rhs = (theta * p.adjoint(y)).sum(-1)
    _close(lhs, rhs, tol, "<Pθ, y> != <θ, Pᵀy>", p)


def check_gradients(p: Projection, tol: tuple[float, float] = TOL64) -> None:
    """Autograd through forward and adjoint: ∇_θ⟨Pθ, y⟩ = Pᵀy and ∇_y⟨θ, Pᵀy⟩ = Pθ."""
    theta = _randn((3, p.d), p, 11).requires_grad_(True)
    y = _randn((3, p.D), p, 12)
    (grad,) = torch.autograd.grad((p(theta) * y).sum(), theta)
    _close(grad, p.adjoint(y), tol, "gradient of forward != adjoint", p)
    y = y.clone().requires_grad_(True)
    theta = theta.detach()
    (grad,) = torch.autograd.grad((p.adjoint(y) * theta).sum(), y)
    _close(grad, p(theta), tol, "gradient of adjoint != forward", p)


def check_memory(p: Projection) -> None:
    """``memory_bytes()`` is a positive int."""
    nbytes = p.memory_bytes()
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ContractError(f"{_label(p)}: memory_bytes() must be a positive int, got {nbytes!r}")


def check_wrong_shapes(p: Projection) -> None:
    """Inputs whose last dim is wrong (or scalars) raise InvalidArgumentError."""
    bad: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = [
        ("forward", p.forward, _randn((2, p.d + 1), p, 13)),
        ("adjoint", p.adjoint, _randn((2, p.D + 1), p, 14)),
        ("forward", p.forward, torch.tensor(1.0, dtype=p.dtype, device=p.device)),
    ]
    for what, fn, x in bad:
        try:
            fn(x)
        except InvalidArgumentError:
            continue
        except Exception as exc:
            raise ContractError(
                f"{_label(p)}: {what} of shape {tuple(x.shape)} raised {type(exc).__name__} "
                "instead of InvalidArgumentError"
            ) from exc
        raise ContractError(f"{_label(p)}: {what} accepted an input of shape {tuple(x.shape)}")


def check_state_dict(p: Projection) -> None:
    """Saving ``state_dict`` and loading it into an instance whose state was wiped restores P."""
    buf = io.BytesIO()
    torch.save(p.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    cls = type(p)
    q = build(cls, p.d, p.D, seed=p.seed, dtype=p.dtype, device=p.device, **_options_of(p))
    with torch.no_grad():
        for t in q.state_dict().values():
            t.zero_()
    q.load_state_dict(state)
    _close(q.to_dense(), p.to_dense(), (0.0, 0.0), "state_dict round trip changed the matrix", p)


def check_device(p: Projection, device: torch.device | str) -> None:
    """``.to(device)`` moves all state: same matrix there, outputs on that device."""
    q = build(type(p), p.d, p.D, seed=p.seed, dtype=p.dtype, **_options_of(p)).to(device)
    if q.device != torch.device(device) and q.device.type != torch.device(device).type:
        raise ContractError(f"{_label(p)}: .to({device}) left state on {q.device}")
    theta = _randn((3, p.d), q, 15)
    y = q(theta)
    if y.device.type != torch.device(device).type:
        raise ContractError(f"{_label(p)}: forward on {device} returned a tensor on {y.device}")
    tol = TOL64 if p.dtype == torch.float64 else TOL32
    _close(q.to_dense().cpu(), p.to_dense().cpu(), tol, f"matrix differs after .to({device})", p)


def _options_of(p: Projection) -> dict[str, Any]:
    return dict(getattr(p, "_testing_options", {}))


# ------------------------------------------------------------------------------------------
# Checks on the class (several instances)
# ------------------------------------------------------------------------------------------
def check_determinism(name_or_cls: str | type[Projection], d: int, D: int, **options: Any) -> None:
    """Same seed ⇒ identical matrix; other seeds ⇒ a different matrix.

    Tiny sizes can repeat a matrix by chance (a 1×1 ±1 entry), so seed 3 is compared with
    seeds 4…12 and only "all nine equal" fails.
    """
    a = build(name_or_cls, d, D, seed=3, **options).to_dense()
    b = build(name_or_cls, d, D, seed=3, **options).to_dense()
    name = resolve(name_or_cls).__name__
    if not torch.equal(a, b):
        raise ContractError(f"{name}(d={d}, D={D}): the same seed gave different matrices")
    if all(torch.equal(a, build(name_or_cls, d, D, seed=s, **options).to_dense()) for s in range(4, 13)):
        raise ContractError(f"{name}(d={d}, D={D}): seeds 3…12 all gave the same matrix")


def check_dtypes(name_or_cls: str | type[Projection], d: int, D: int, **options: Any) -> None:
    """float32 and float64 instances of one seed hold the same matrix (to float32 precision)."""
    p64 = build(name_or_cls, d, D, seed=1, dtype=torch.float64, **options)
    p32 = build(name_or_cls, d, D, seed=1, dtype=torch.float32, **options)
    for p, dt in ((p64, torch.float64), (p32, torch.float32)):
        if p.dtype != dt or p(_randn((2, d), p, 16)).dtype != dt:
            raise ContractError(f"{_label(p)}: dtype={dt} not honoured (state/output {p.dtype})")
    _close(p32.to_dense().double(), p64.to_dense(), TOL32, "float32 and float64 matrices differ", p64)


def check_column_norms(
    name_or_cls: str | type[Projection],
    d: int,
    D: int,
    seeds: Sequence[int] = tuple(range(8)),
    z: float = 6.0,
    **options: Any,
) -> float:
    """E‖P e_j‖² = 1: mean squared column norm over ``seeds`` within z standard errors of 1.

    The per-seed means (over the d columns) are independent across seeds; their sample
    standard deviation sets the tolerance z·sd/√(#seeds) (+1e-6 for exactly normalised
    projections). Returns the overall mean.
    """
    per_seed = torch.stack(
        [build(name_or_cls, d, D, seed=s, **options).to_dense().pow(2).sum(0).mean() for s in seeds]
    ).double()
    mean = float(per_seed.mean())
    se = float(per_seed.std()) / math.sqrt(len(seeds)) if len(seeds) > 1 else 0.0
    if not abs(mean - 1.0) <= z * se + 1e-6:
        raise ContractError(
            f"{resolve(name_or_cls).__name__}(d={d}, D={D}): mean ‖P e_j‖² = {mean:.4f} over seeds "
            f"{list(seeds)}, expected 1 (tolerance {z * se + 1e-6:.4f})"
        )
    return mean


INSTANCE_CHECKS: tuple[Callable[[Projection], None], ...] = (
    check_shapes,
    check_dense_consistency,
    check_linearity,
    check_adjoint_identity,
    check_gradients,
    check_memory,
    check_wrong_shapes,
    check_state_dict,
)


def run_all_checks(
    name_or_cls: str | type[Projection],
    d: int = 7,
    D: int = 50,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    **options: Any,
) -> list[str]:
    """Run every contract check on the projection; returns the names of the checks run.

    Algebra runs in float64 on the CPU; with ``device`` (e.g. ``"cuda"``) the instance checks
    run there too, plus :func:`check_device`. Raises :class:`ContractError` on the first failure.
    """
    done: list[str] = []
    devices: list[torch.device | str | None] = [None] if device is None else [None, device]
    for dev in devices:
        p = build(name_or_cls, d, D, seed=seed, dtype=torch.float64, device=dev, **options)
        p._testing_options = dict(options)  # type: ignore[attr-defined,assignment]
        for check in INSTANCE_CHECKS:
            check(p)
            done.append(check.__name__ if dev is None else f"{check.__name__}[{dev}]")
    if device is not None:
        p = build(name_or_cls, d, D, seed=seed, dtype=torch.float64, **options)
        p._testing_options = dict(options)  # type: ignore[attr-defined,assignment]
        check_device(p, device)
        done.append("check_device")
    # a construction that declares non-unit columns on purpose (fastjl variant="report") is
    # exempt from the column-norm contract, and only from that one
    unit = getattr(p, "unit_columns", True)
    for cls_check in (check_determinism, check_dtypes, check_column_norms):
        if cls_check is check_column_norms and not unit:
            continue
        cls_check(name_or_cls, d, D, **options)
        done.append(cls_check.__name__)
    return done


# ------------------------------------------------------------------------------------------
# JL statistics over a fixed set of seeds
# ------------------------------------------------------------------------------------------
#: seeds of the JL check: fixed, never chosen by hypothesis
JL_SEEDS: tuple[int, ...] = tuple(range(1000))
JL_SLACK = 1.25
JL_ALPHA = 1e-3
JL_Z = 5.0


def jl_eps(d: int) -> float:
    """ε = 1.7·√(2/d) (1.7 ideal standard deviations of χ²_d/d), at most 0.9: where a tail count
    best tells the ideal χ²_d/d from a sketch with twice its variance."""
    return min(0.9, 1.7 * math.sqrt(2.0 / d))


def ideal_tail(d: int, eps: float) -> float:
    """P(|χ²_d/d − 1| > ε): the probability that a Gaussian sketch's ratio leaves 1 ± ε."""
    from scipy.stats import chi2

    return float(chi2.cdf(d * (1 - eps), d) + chi2.sf(d * (1 + eps), d))


def jl_tail_bound(n: int, d: int, eps: float, slack: float = JL_SLACK, alpha: float = JL_ALPHA) -> int:
    """Most seeds (of n) allowed outside 1 ± ε: the (1 − α) quantile of Binomial(n, slack·p),
    p = :func:`ideal_tail`."""
    from scipy.stats import binom

    return int(binom.ppf(1 - alpha, n, min(1.0, slack * ideal_tail(d, eps))))


def sketch_ratios_over_seeds(
    name_or_cls: str | type[Projection],
    d: int,
    D: int,
    X: torch.Tensor,
    seeds: Sequence[int] = JL_SEEDS,
    **options: Any,
) -> torch.Tensor:
    """r[s, i] = ‖S_s x_i‖² / ‖x_i‖² for each seed s and row x_i of X (n, D); float64."""
    X = X.to(torch.float64).reshape(-1, D)
    norms = X.pow(2).sum(-1)
    if bool((norms == 0).any()):
        raise InvalidArgumentError("sketch_ratios_over_seeds: an input vector is zero")
    rows = [build(name_or_cls, d, D, seed=s, dtype=torch.float64, **options).sketch(X).pow(2).sum(-1)
            for s in seeds]
    return torch.stack(rows) / norms


@dataclass(frozen=True)
class JLResult:
    """Outcome of :func:`check_jl_ratios`: mean ± standard error, seeds outside 1 ± ε, bound."""

    n: int
    mean: float
    se: float
    outside: int
    bound: int
    eps: float
    expected_outside: float  # n × ideal tail probability


def check_jl_ratios(
    ratios: torch.Tensor,
    d: int,
    *,
    eps: float | None = None,
    slack: float = JL_SLACK,
    alpha: float = JL_ALPHA,
    z: float = JL_Z,
    tail: bool = True,
    label: str = "sketch",
) -> JLResult:
    """Check per-seed ratios r_s (one input, independent seeds) against the JL ideal.

    Mean: |mean(r) − 1| ≤ z·se with se = max(sd(r), √(2/d))/√n. Tail (if ``tail``): the number
    of seeds with |r − 1| > ε is at most :func:`jl_tail_bound`. Raises :class:`ContractError`.
    """
    r = ratios.detach().to(torch.float64).reshape(-1).cpu()
    n = r.numel()
    if n < 2:
        raise InvalidArgumentError("check_jl_ratios needs at least two seeds")
    eps = jl_eps(d) if eps is None else eps
    mean = float(r.mean())
    se = max(float(r.std()), math.sqrt(2.0 / d)) / math.sqrt(n)
    outside = int(((r - 1).abs() > eps).sum())
    bound = jl_tail_bound(n, d, eps, slack, alpha)
    res = JLResult(n, mean, se, outside, bound, eps, n * ideal_tail(d, eps))
    if not abs(mean - 1) <= z * se:
        raise ContractError(
            f"{label}: mean of ‖Sx‖²/‖x‖² over {n} seeds is {mean:.4f} ± {se:.4f}, expected 1 "
            f"(tolerance {z:g} standard errors)"
        )
    if tail and outside > bound:
        raise ContractError(
            f"{label}: {outside}/{n} seeds give |‖Sx‖²/‖x‖² − 1| > ε = {eps:.3f}; a Gaussian sketch "
            f"expects {res.expected_outside:.1f}, and more than {bound} (the {1 - alpha:.4g} binomial "
            f"quantile at {slack:g}× the ideal rate) means a heavier tail than χ²_{d}/{d}"
        )
    return res


def check_jl(
    name_or_cls: str | type[Projection],
    d: int,
    D: int,
    X: torch.Tensor,
    *,
    seeds: Sequence[int] = JL_SEEDS,
    eps: float | None = None,
    slack: float = JL_SLACK,
    alpha: float = JL_ALPHA,
    tail: bool = True,
    **options: Any,
) -> list[JLResult]:
    """:func:`check_jl_ratios` for each row x of X (n, D), over the fixed ``seeds``."""
    ratios = sketch_ratios_over_seeds(name_or_cls, d, D, X, seeds, **options)
    name = name_or_cls if isinstance(name_or_cls, str) else name_or_cls.__name__
    return [check_jl_ratios(ratios[:, i], d, eps=eps, slack=slack, alpha=alpha, tail=tail,
                            label=f"{name}(d={d}, D={D}) on input {i}")
            for i in range(ratios.shape[1])]
