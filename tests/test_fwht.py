"""FWHT against scipy's Hadamard matrix: sizes, dims, batch shapes, dtypes, autograd, errors."""

from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

import projbench
from projbench.builtin import fwht_torch as kernel
from projbench.builtin.fwht_torch import _factor_bits, fwht_leading, fwht_torch, hadamard_matrix
from projbench.errors import InvalidArgumentError
from projbench.hadamard import FWHTBackend, fwht, is_power_of_two, next_power_of_two


def scipy_h(n: int) -> torch.Tensor:
    return torch.from_numpy(scipy.linalg.hadamard(n).astype("float64"))


@pytest.mark.parametrize("k", range(0, 13))
def test_matches_scipy_every_size(k: int) -> None:
    n = 1 << k
    x = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    torch.testing.assert_close(fwht(x), x @ scipy_h(n), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("k", [13, 16, 18, 20])
def test_large_sizes_via_kronecker(k: int) -> None:
    """H_{ab} = H_a ⊗ H_b (Sylvester), so x·H_{ab} = vec(H_a X H_b) with X = x as (a, b)."""
    a, b = 1 << (k // 2), 1 << (k - k // 2)
    x = torch.randn(2, a * b, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    ref = (scipy_h(a) @ x.view(2, a, b) @ scipy_h(b)).reshape(2, a * b)
    torch.testing.assert_close(fwht(x), ref, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("radix", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("k", [6, 9, 11])
def test_every_radix_plan_is_correct(monkeypatch: pytest.MonkeyPatch, radix: int, k: int) -> None:
    monkeypatch.setitem(kernel.RADIX_BITS, "cpu", radix)
    monkeypatch.setitem(kernel.DENSE_MAX_BITS, "cpu", 0)
    monkeypatch.setitem(kernel.DENSE_MAX_WORK, "cpu", 0)
    x = torch.randn(2, 1 << k, dtype=torch.float64)
    torch.testing.assert_close(fwht_torch(x), x @ scipy_h(1 << k), rtol=1e-12, atol=1e-9)


def test_row_groups_cover_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows go through in cache-sized groups; an uneven last group must still be right."""
    monkeypatch.setitem(kernel.CHUNK_ELEMENTS, "cpu", 3 * 1024)
    x = torch.randn(11, 1024, dtype=torch.float64)
    torch.testing.assert_close(fwht_torch(x), x @ scipy_h(1024), rtol=1e-12, atol=1e-9)


def test_input_is_not_modified() -> None:
    x = torch.randn(4, 4096)
    before = x.clone()
    fwht(x)
    assert torch.equal(x, before)


@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    k=st.integers(0, 9),
    dim_pos=st.integers(0, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_any_dim_and_batch_shape(batch: list[int], k: int, dim_pos: int, dtype: torch.dtype) -> None:
    n = 1 << k
    dim = min(dim_pos, len(batch))
    shape = [*batch[:dim], n, *batch[dim:]]
    x = torch.randn(shape, dtype=torch.float64)
    ref = torch.movedim(torch.movedim(x, dim, -1) @ scipy_h(n), -1, dim)
    y = fwht(x.to(dtype), dim=dim)
    assert y.shape == x.shape and y.dtype == dtype
    tol = 1e-9 if dtype == torch.float64 else 1e-4 * math.sqrt(n)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=tol)
    # negative dims address the same axis
    torch.testing.assert_close(fwht(x, dim=dim - x.dim()), ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype: torch.dtype) -> None:
    x = torch.randn(3, 256, dtype=torch.float64)
    y = fwht(x.to(dtype), normalized=True)
    assert y.dtype == dtype
    ref = x @ scipy_h(256) / 16
    torch.testing.assert_close(y.double(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("n", [1, 2, 64, 2048])
def test_normalized_is_an_orthogonal_involution(n: int) -> None:
    x = torch.randn(5, n, dtype=torch.float64)
    y = fwht(x, normalized=True)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fwht(y, normalized=True), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fwht(fwht(x)), n * x, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [1, 4, 128, 256])
@pytest.mark.parametrize("normalized", [False, True])
def test_gradcheck(n: int, normalized: bool) -> None:
    x = torch.randn(1 if n > 4 else 2, n, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fwht(t, normalized=normalized), (x,))
    assert torch.autograd.gradgradcheck(lambda t: fwht(t, normalized=normalized), (x,))


def test_gradient_along_other_dim_and_direct_backend_call() -> None:
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(8, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad((fwht(x, dim=0) * g).sum(), x)
    torch.testing.assert_close(grad, scipy_h(8) @ g)
    x2 = torch.randn(2, 256, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fwht_torch, (x2,))


@pytest.mark.parametrize("n", [3, 6, 1000])
def test_non_power_of_two_says_to_pad(n: int) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"{n}.*zero-pad to {next_power_of_two(n)}"):
        fwht(torch.randn(2, n))


@pytest.mark.parametrize(
    ("x", "kwargs", "pattern"),
    [
        (torch.tensor(1.0), {}, "scalar"),
        (torch.ones(4, dtype=torch.int64), {}, "floating"),
        (torch.ones(2, 4), {"dim": 2}, "out of range"),
        ([1.0, 2.0], {}, "torch.Tensor"),
    ],
)
def test_bad_arguments(x: object, kwargs: dict[str, int], pattern: str) -> None:
    with pytest.raises(InvalidArgumentError, match=pattern):
        fwht(x, **kwargs)  # type: ignore[arg-type]


def test_unknown_backend_is_reported() -> None:
    with pytest.raises(projbench.UnknownNameError, match="torch"):
        fwht(torch.ones(4), backend="nonexistent")


def test_default_backend_is_registered() -> None:
    from projbench.manager import get_registry

    backend = get_registry("backends").get("torch")
    assert isinstance(backend, FWHTBackend)
    assert backend.available()
    torch.testing.assert_close(backend.transform(torch.ones(1, 8)), torch.tensor([[8.0] + [0.0] * 7]))


@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_hadamard_matrix(n: int) -> None:
    torch.testing.assert_close(hadamard_matrix(n, torch.float64), scipy_h(n))
    with pytest.raises(InvalidArgumentError):
        hadamard_matrix(n + 3 if n > 1 else 3)


def test_power_of_two_helpers() -> None:
    powers = [is_power_of_two(n) for n in (0, 1, 2, 3, 4, 6, 1024)]
    assert powers == [False, True, True, False, True, False, True]
    assert [next_power_of_two(n) for n in (1, 2, 3, 5, 1024, 1025)] == [1, 2, 4, 8, 1024, 2048]


@pytest.mark.parametrize("k", range(0, 31))
@pytest.mark.parametrize("radix", [4, 5, 7])
def test_factor_bits_is_a_near_equal_split(k: int, radix: int) -> None:
    bits = _factor_bits(k, radix)
    assert sum(bits) == k
    assert all(1 <= b <= radix for b in bits)
    assert len(bits) == math.ceil(k / radix)
    assert not bits or max(bits) - min(bits) <= 1


def test_tuning_tables_are_keyed_per_device_type() -> None:
    """Every plan setting of the torch kernel has a CPU and a CUDA entry (other device types use
    the CPU's)."""
    tables = (kernel.RADIX_BITS, kernel.DENSE_MAX_BITS, kernel.DENSE_SMALL_MAX_BITS, kernel.DENSE_MAX_WORK,
              kernel.CHUNK_ELEMENTS, kernel.BLOCK_BITS, kernel.OUTER_RADIX_BITS)
    assert all(set(t) == {"cpu", "cuda"} for t in tables)


def test_kernel_names_still_import_from_the_dispatch_module() -> None:
    import projbench.hadamard as dispatch

    assert dispatch.fwht_torch is fwht_torch and dispatch.hadamard_matrix is hadamard_matrix
    assert dispatch.fwht_leading is fwht_leading and dispatch.TORCH_BACKEND is kernel.TORCH_BACKEND
    with pytest.raises(AttributeError, match="no attribute 'RADIX_BITS'"):
        dispatch.RADIX_BITS  # noqa: B018 - tuning tables have one home: the kernel module


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("k", [0, 3, 7, 8, 12, 16, 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(k: int, dtype: torch.dtype) -> None:
    x = torch.randn(3, 1 << k, dtype=dtype)
    y = fwht(x.cuda(), normalized=True)
    assert y.is_cuda and y.dtype == dtype
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(y.cpu(), fwht(x, normalized=True), rtol=tol, atol=tol)
    xg = x.cuda().double().requires_grad_(True) if k <= 8 else None
    if xg is not None:
        assert torch.autograd.gradcheck(lambda t: fwht(t, normalized=True), (xg,))


@pytest.mark.parametrize(("k", "block"), [(9, 4), (12, 5), (11, 10), (13, 6)])
@pytest.mark.parametrize("batch", [1, 3])
def test_cache_blocked_long_rows(monkeypatch: pytest.MonkeyPatch, k: int, block: int, batch: int) -> None:
    """Rows longer than 2^BLOCK_BITS take the blocked path: H_{n/C}·(X·H_C)."""
    monkeypatch.setitem(kernel.BLOCK_BITS, "cpu", block)
    monkeypatch.setitem(kernel.RADIX_BITS, "cpu", 3)
    n = 1 << k
    x = torch.randn(batch, n, dtype=torch.float64)
    a, b = 1 << (k // 2), 1 << (k - k // 2)
    ref = (scipy_h(a) @ x.view(batch, a, b) @ scipy_h(b)).reshape(batch, n)
    torch.testing.assert_close(fwht_torch(x), ref, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("outer", [1, 2, 3, 5])
def test_outer_radix_plans(monkeypatch: pytest.MonkeyPatch, outer: int) -> None:
    """The passes over the leading axis of the blocked path, for every outer radix."""
    monkeypatch.setitem(kernel.BLOCK_BITS, "cpu", 6)
    monkeypatch.setitem(kernel.OUTER_RADIX_BITS, "cpu", outer)
    for batch in (1, 2):
        x = torch.randn(batch, 1 << 12, dtype=torch.float64)
        ref = (scipy_h(64) @ x.view(batch, 64, 64) @ scipy_h(64)).reshape(batch, -1)
        torch.testing.assert_close(fwht_torch(x), ref, rtol=1e-10, atol=1e-8)


def test_reused_workspace_never_leaks_into_results() -> None:
    """Scratch buffers are reused between calls: earlier results must stay intact, and threads
    running transforms at the same time must not share one."""
    import threading

    xs = [torch.randn(2, 1 << 17, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
          for i in range(4)]
    refs = [(scipy_h(256) @ x.view(2, 256, 512) @ scipy_h(512)).reshape(2, -1) for x in xs]
    outs = [fwht(x) for x in xs]
    for out, ref in zip(outs, refs, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-7)
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = fwht(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, ref in enumerate(refs):
        torch.testing.assert_close(results[i], ref, rtol=1e-10, atol=1e-7)


@pytest.mark.parametrize(("B", "m", "K"),
                         [(1, 1, 5), (2, 2, 3), (1, 8, 5), (3, 64, 7), (1, 1024, 195), (2, 16, 100)])
def test_fwht_leading_is_H_times_each_column(B: int, m: int, K: int) -> None:
    """fwht_leading transforms the leading (block) axis of (B, m, K): scale·H_m·X_b, against
    scipy's Hadamard matrix; float32 agrees with float64 to rounding."""
    x = torch.randn(B, m, K, dtype=torch.float64)
    H = torch.from_numpy(scipy.linalg.hadamard(m).astype("float64"))
    torch.testing.assert_close(fwht_leading(x, scale=0.25), 0.25 * (H @ x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fwht_leading(x.float()).double(), H @ x, rtol=1e-5, atol=1e-4 * m)
    with pytest.raises(InvalidArgumentError, match="power-of-two"):
        fwht_leading(torch.zeros(1, 6, 2))


def test_scaled_block_cache_stays_within_its_byte_bound() -> None:
    """Scales differ per projection seed: a study must not pin one dense scaled block per seed."""
    cpu = torch.device("cpu")
    for i in range(40):  # 40 × 2 MiB (512×512 float64) > the 16 MiB bound
        h = kernel._scaled_block(512, torch.float64, cpu, 1.0 + i / 1000)
        torch.testing.assert_close(h, scipy_h(512) * (1.0 + i / 1000))
    held = sum(t.numel() * t.element_size() for t in kernel._SCALED_CACHE.values())
    assert 0 < held <= kernel._SCALED_CACHE_MAX_BYTES
    assert kernel._scaled_block(512, torch.float64, cpu, 1.039) is h  # a hit, not a recompute
