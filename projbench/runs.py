"""Training runs in one place: a run's identity (:class:`RunSpec`) and its execution
(:func:`execute_run`), the unit of work every executor ships to a worker.

A run is one of

* ``baseline`` — full training of ``make_model(architecture, dataset, seed)`` (all D parameters);
* ``subspace`` — the same model wrapped in :class:`projbench.SubspaceModel` with projection
  ``projection`` of dimension ``d``, projection seed = ``seed``; optionally after ``burn_in``
  steps of full training that move θ₀ away from its initialisation (Larsen et al. 2021);
* ``direct`` — full training of a directly parameterised smaller network
  (``make_model(..., **arch_options)``).

:attr:`RunSpec.identity` holds *everything that changes the result* — architecture options,
dataset, train/test subsets, recipe, projection and its options, per-layer, seed, burn-in,
device, dtype and the number of torch threads (a different intra-op split can change float
rounding) — and :attr:`RunSpec.run_id` is a hash of it. Two runs with the same id are the
same computation, bit for bit on the same machine type; a study stores results by run id, so
a baseline shared by several projections is trained once, and a resumed study never mixes
settings.

Data: the train/test splits are loaded once per worker process (the dataset plugin caches
them) and subsetted with a fixed generator (seed 0), so every worker sees the same examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from projbench.allocator import allocator_info
from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.provenance import run_provenance
from projbench.training import Recipe

ROLES = ("baseline", "subspace", "direct")


def _frozen(options: dict[str, Any] | tuple[tuple[str, Any], ...] | None) -> tuple[tuple[str, Any], ...]:
    if not options:
        return ()
    items = options.items() if isinstance(options, dict) else options
    return tuple(sorted((str(k), v) for k, v in items))


@dataclass(frozen=True)
class RunSpec:
    """One training run; see the module docstring. ``projection=None`` means full training."""

    architecture: str
    dataset: str
    seed: int
    recipe: Recipe
    projection: str | None = None
    d: int | None = None
    options: tuple[tuple[str, Any], ...] = ()
    per_layer: bool = False
    burn_in: int = 0
    arch_options: tuple[tuple[str, Any], ...] = ()
    train_subset: int | None = None
    test_subset: int | None = None
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    fwht_backend: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "arch_options", _frozen(self.arch_options))
        if self.projection is not None and (self.d is None or int(self.d) < 1):
            raise InvalidArgumentError(f"a subspace run needs d >= 1, got d={self.d!r}")
        if self.projection is None and (self.d is not None or self.options or self.burn_in):
            raise InvalidArgumentError("a full-training run takes no d, projection options or burn-in")
        if self.burn_in < 0:
            raise InvalidArgumentError(f"burn_in must be >= 0 steps, got {self.burn_in}")
        if self.threads < 1:
            raise InvalidArgumentError(f"threads must be >= 1, got {self.threads}")

    @property
    def role(self) -> str:
        if self.projection is not None:
            return "subspace"
        return "direct" if self.arch_options else "baseline"

    @property
    def identity(self) -> dict[str, Any]:
        """Every field that changes the result (JSON-safe)."""
        out = asdict(self)
        out["recipe"] = self.recipe.identity_dict()
        out["options"] = dict(self.options)
        out["arch_options"] = dict(self.arch_options)
        out["role"] = self.role
        if self.fwht_backend is None:  # the default backend: keep the ids of earlier studies
            del out["fwht_backend"]
        return out

    @cached_property
    def run_id(self) -> str:
        """A hash of :attr:`identity`, computed once per spec (the engine asks for it on every
        scheduling sweep)."""
        blob = json.dumps(self.identity, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)

    @classmethod
    def from_identity(cls, identity: dict[str, Any]) -> RunSpec:
        """Inverse of :attr:`identity` (for records read back from a store)."""
        data = {k: v for k, v in identity.items() if k != "role"}
        data["recipe"] = Recipe(**data["recipe"])
        data["options"] = _frozen(data.get("options"))
        data["arch_options"] = _frozen(data.get("arch_options"))
        return cls(**data)

    def label(self) -> str:
        """Short human description, for progress lines."""
        what = {
            "baseline": "baseline",
            "direct": f"direct {dict(self.arch_options)}",
            "subspace": f"{self.projection} d={self.d}",
        }[self.role]
        return f"{self.architecture}/{self.dataset} {what} seed={self.seed} lr={self.recipe.lr:g}"


# ------------------------------------------------------------------------------------------
# execution (in whatever process the executor chose)
# ------------------------------------------------------------------------------------------
def _subset(data: tuple[Any, Any], n: int | None) -> tuple[Any, Any]:
    import torch

    x, y = data
    if n is None or n >= x.shape[0]:
        return x, y
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:n]
    return x[idx], y[idx]


def load_run_data(spec: RunSpec, data_dir: str | None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(train, test) tensors of the run's dataset, subsetted as the spec says."""
    from projbench.datasets import load_dataset

    train = _subset(load_dataset(spec.dataset, "train", data_dir), spec.train_subset)
    test = _subset(load_dataset(spec.dataset, "test", data_dir), spec.test_subset)
    return train, test


def build_model(spec: RunSpec, train_data: tuple[Any, Any] | None = None) -> Any:
    """The module a run trains: the (burned-in) model, wrapped in a SubspaceModel for subspace runs."""
    import torch

    from projbench.architectures import make_model
    from projbench.training import train

    kwargs = dict(spec.arch_options)
    model = make_model(spec.architecture, spec.dataset, seed=spec.seed, **kwargs)
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(spec.dtype)
    if dtype is None:
        raise InvalidArgumentError(f"dtype must be float32 or float64, got {spec.dtype!r}")
    model = model.to(dtype=dtype)
    if spec.projection is None:
        return model
    if spec.burn_in:
        if train_data is None:
            raise InvalidArgumentError("burn-in needs the training data")
        n = int(train_data[0].shape[0])
        epochs = math.ceil(spec.burn_in / math.ceil(n / spec.recipe.batch_size))
        burn = spec.recipe.with_(epochs=epochs, max_steps=spec.burn_in)
        x, y = train_data
        # a separate data order for burn-in (seed offset), so it is not the subspace run's order
        train(model, (x.to(dtype), y), None, burn, seed=spec.seed + 1_000_003, device=spec.device)
        model = model.to("cpu")
    from projbench.subspace import SubspaceModel

    return SubspaceModel(
        model,
        spec.projection,
        int(spec.d or 0),
        seed=spec.seed,
        per_layer=spec.per_layer,
        device=spec.device,
        **dict(spec.options),
    )


def _device_problem(device: str) -> str | None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        return f"unknown device {device!r}"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return f"device {device!r} requested but CUDA is not available on {socket.gethostname()}"
    return None


@dataclass
class RunRecord:
    """What a finished run reports back (JSON-safe via :meth:`to_dict`)."""

    run_id: str
    identity: dict[str, Any]
    status: str  # ok | diverged | failed
    stats: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    worker: dict[str, Any] = field(default_factory=dict)

    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "run", **asdict(self)}


def train_run(spec: RunSpec, data_dir: str | None = None, measure: dict[str, Any] | None = None) -> Any:
    """Train ``spec`` in this process and return its :class:`projbench.training.TrainResult`
    (with ``D`` set as an attribute). Raises on bad input; see :func:`execute_run`."""
    import torch

    from projbench.architectures import count_parameters
    from projbench.training import train

    problem = _device_problem(spec.device)
    if problem:
        raise InvalidArgumentError(problem)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    from projbench.hadamard import use_backend

    previous_backend = use_backend(spec.fwht_backend) if spec.fwht_backend else None
    try:
        train_data, test_data = load_run_data(spec, data_dir)
        model = build_model(spec, train_data)
        k = int((measure or {}).get("condition_columns") or 0)
        cond = None
        if k and spec.projection is not None and not spec.per_layer:
            from projbench.projection import column_condition_number

            cond = column_condition_number(model.projection, min(k, int(spec.d or 1)), seed=spec.seed)
        result = train(model, train_data, test_data, spec.recipe, seed=spec.seed, device=spec.device)
        result.D = int(model.D) if spec.projection is not None else count_parameters(model)  # type: ignore[attr-defined]
        result.cond_P_sample = cond  # type: ignore[attr-defined]
        return result
    finally:
        torch.set_num_threads(previous_threads)
        if spec.fwht_backend:
            use_backend(previous_backend)


def execute_run(
    spec: RunSpec, data_dir: str | None = None, measure: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train ``spec`` in this process and return its record. Never raises for a failing run:
    any exception is recorded as ``failed`` with its error (a diverged run is ``diverged``)."""
    start = time.perf_counter()
    worker: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    record = RunRecord(spec.run_id, spec.identity, "failed", worker=worker)
    try:
        worker["cpu_allocator"] = allocator_info()["policy"]  # set by the process's entry point
        record.provenance = run_provenance(
            spec.architecture, spec.dataset, spec.projection, data_dir, spec.fwht_backend
        )
        result = train_run(spec, data_dir, measure)
        kept_apart = ("history", "status", "step_losses", "curve")
        stats = {k: v for k, v in result.to_dict().items() if k not in kept_apart}
        stats["D"] = result.D
        if result.cond_P_sample is not None:
            stats["cond_P_sample"] = result.cond_P_sample
        record.status = "diverged" if result.status == "diverged" else "ok"
        record.stats = stats
        record.samples = {
            "epoch_train_loss": [h["train_loss"] for h in result.history],
            "curve": result.curve,
        }
        if record.status == "diverged":
            record.error = f"non-finite training loss at step {result.diverged_at_step}"
    except ProjbenchError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a failing run is recorded, never loses the study
        record.error = f"{type(exc).__name__}: {exc}"
        record.samples = {"traceback": traceback.format_exc(limit=6)}
    record.stats["run_wall_s"] = time.perf_counter() - start
    return record.to_dict()


def parameter_count(architecture: str, dataset: str, arch_options: dict[str, Any] | None = None) -> int:
    """D of an architecture on a dataset, counted on the meta device (no memory, no data)."""
    import torch

    from projbench.architectures import count_parameters, make_model

    with torch.device("meta"):
        model = make_model(architecture, dataset, **(arch_options or {}))
    return count_parameters(model)


__all__ = [
    "ROLES",
    "RunRecord",
    "RunSpec",
    "build_model",
    "execute_run",
    "load_run_data",
    "parameter_count",
    "train_run",
]
