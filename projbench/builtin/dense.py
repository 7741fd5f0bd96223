"""Built-in projection ``dense``: i.i.d. Gaussian P ∈ R^{D×d} stored as a (D, d) buffer.

Entries P_ij ~ N(0, 1/D) i.i.d., so E‖P e_j‖² = 1; with ``normalize_columns=True`` every
column is rescaled to exactly unit norm (Li et al. 2018). Sampled in float32 from a CPU
``torch.Generator().manual_seed(seed)`` and then cast, so every device and dtype sees the same
matrix. O(D·d) memory: a matrix above ``max_bytes`` is refused with
:class:`~projbench.errors.ResourceLimitError` before anything is allocated.
"""

from __future__ import annotations

import math

import torch

from projbench.errors import InvalidArgumentError, ResourceLimitError
from projbench.projection import Projection

DEFAULT_MAX_BYTES = 2 * 1024**3


class DenseProjection(Projection):
    """Dense Gaussian projection P_ij ~ N(0, 1/D) (options: exact unit columns, byte budget)."""

    name = "dense"
    matrix: torch.Tensor  # (D, d) buffer
    summary = "i.i.d. Gaussian N(0, 1/D) matrix, O(D·d) memory and time (reference)"

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        normalize_columns: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise InvalidArgumentError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        nbytes = D * d * torch.empty(0, dtype=dtype).element_size()
        if nbytes > max_bytes:
            raise ResourceLimitError(
                f"a dense {D}×{d} {dtype} projection needs {nbytes:,} bytes "
                f"({nbytes / 1024**3:.2f} GiB), over max_bytes={max_bytes:,}; use a structured "
                "projection (fastfood, fastjl or sparse), or raise max_bytes (-o max_bytes=...)"
            )
        self.normalize_columns = bool(normalize_columns)
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(D, d, generator=g, dtype=torch.float32)
        if self.normalize_columns:
            m /= m.norm(dim=0, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        else:
            m /= math.sqrt(D)
        self.register_buffer("matrix", m.to(dtype=dtype, device=self._init_device))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D)."""
        return theta @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d)."""
        return y @ self.matrix

    @torch.no_grad()
    def to_dense(self) -> torch.Tensor:
        return self.matrix.clone()
