"""Training runs in one place: a run's identity (:class:`RunSpec`) and its execution
(:func:`execute_run`), the unit of work every executor ships to a worker.

A run is one of

* ``baseline`` — full training of ``make_model(architecture, dataset, seed)`` (all D parameters);
* ``subspace`` — the same model wrapped in :class:`projbench.SubspaceModel` with projection
  ``projection`` of dimension ``d``, projection seed = ``seed``; optionally after ``burn_in``
  steps of full training that move θ₀ away from its initialisation (Larsen et al. 2021);
* ``direct`` — full training of a directly parameterised smaller network
  (``make_model(..., **arch_options)``);
* ``pretrain`` — full training whose final weights are kept (``save_weights``, a state dict
  file): the θ₀ of later runs that fine-tune from it (:mod:`projbench.transfer`).

Any run may train on a class-filtered task (``classes``: the examples of those labels, label
``classes[j]`` renumbered ``j``, a model with len(classes) outputs), start from a trained θ₀
(``theta0``: a :class:`~projbench.transfer.Theta0`; the model is built as from scratch with the
run's seed and everything but its classifier head is then copied from the trained network), and
a subspace run may scale each parameter tensor's update (``scaling="said"``,
:class:`projbench.SubspaceModel`).

:attr:`RunSpec.identity` holds *everything that changes the result* — architecture options,
dataset, train/test subsets, recipe, projection and its options, per-layer, seed, burn-in,
device, dtype and the number of torch threads (a different intra-op split can change float
rounding), and, when they are not at their defaults, the class filter, θ₀'s source and the
scaling — and :attr:`RunSpec.run_id` is a hash of it (the defaults are left out, so runs stored
before those fields existed keep their ids). Two runs with the same id are the
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
from projbench.recipe import Recipe
from projbench.transfer import Theta0

ROLES = ("baseline", "subspace", "direct", "pretrain")
#: a subspace run's per-tensor scaling (:data:`projbench.subspace.SCALINGS`)
SCALINGS = ("none", "said")


def _frozen(options: dict[str, Any] | tuple[tuple[str, Any], ...] | None) -> tuple[tuple[str, Any], ...]:
    if not options:
        return ()
    items = options.items() if isinstance(options, dict) else options
    return tuple(sorted((str(k), v) for k, v in items))


@dataclass(frozen=True)
class RunSpec:
    """One training run; see the module docstring. ``projection=None`` means full training.

    ``classes``: a class filter (empty: every class); ``scaling``: ``"none"`` or ``"said"``
    (subspace runs); ``theta0``: where θ₀ comes from (None: a fresh initialisation);
    ``save_weights``: a file to keep the trained weights in, which makes the run a
    ``pretrain`` (the path is not part of the identity)."""

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
    classes: tuple[int, ...] = ()
    scaling: str = "none"
    theta0: Theta0 | None = None
    save_weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "arch_options", _frozen(self.arch_options))
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        if self.scaling not in SCALINGS:
            raise InvalidArgumentError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.scaling != "none" and self.projection is None:
            raise InvalidArgumentError("scaling applies to subspace runs; a full-training run takes none")
        if self.save_weights is not None and (self.projection is not None or self.theta0 is not None):
            raise InvalidArgumentError("a pretraining is full training from a fresh initialisation")
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
        if self.save_weights is not None:
            return "pretrain"
        return "direct" if self.arch_options else "baseline"

    @property
    def identity(self) -> dict[str, Any]:
        """Every field that changes the result (JSON-safe); fields added later are left out at
        their defaults, so that earlier runs keep their ids."""
        out = asdict(self)
        out["recipe"] = self.recipe.identity_dict()
        out["options"] = dict(self.options)
        out["arch_options"] = dict(self.arch_options)
        out["role"] = self.role
        if self.fwht_backend is None:  # the default backend: keep the ids of earlier studies
            del out["fwht_backend"]
        del out["save_weights"]  # where the weights go changes nothing (the role says they are kept)
        if self.classes:
            out["classes"] = list(self.classes)
        else:
            del out["classes"]
        if self.scaling == "none":
            del out["scaling"]
        if self.theta0 is None:
            del out["theta0"]
        else:
            out["theta0"] = self.theta0.identity()
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
        data["classes"] = tuple(data.get("classes") or ())
        if data.get("theta0") is not None:
            data["theta0"] = Theta0.from_identity(data["theta0"])
        return cls(**data)

    @property
    def num_classes(self) -> int | None:
        """Outputs of the model: len(classes) for a class-filtered task, else None (the
        dataset's)."""
        return len(self.classes) or None

    @property
    def task(self) -> str:
        """``mnist`` or ``mnist[5-9]``."""
        from projbench.transfer import task_label

        return task_label(self.dataset, self.classes)

    def pretrain_spec(self, path: str | os.PathLike[str] | None = None) -> RunSpec:
        """The pretraining run that makes this run's θ₀ (its ``theta0`` must be ``pretrain``):
        the same architecture, device, dtype and threads on the θ₀'s task, recipe and seed,
        keeping its weights in ``path``."""
        t = self.theta0
        if t is None or t.source != "pretrain" or t.recipe is None or t.dataset is None:
            raise InvalidArgumentError("this run's θ₀ is not a pretraining")
        return RunSpec(
            self.architecture, t.dataset, t.seed, t.recipe, arch_options=self.arch_options,
            train_subset=t.train_subset, test_subset=t.test_subset, device=self.device,
            dtype=self.dtype, threads=self.threads, classes=t.classes,
            save_weights=str(path) if path is not None else "",
        )

    def label(self) -> str:
        """Short human description, for progress lines."""
        what = {
            "baseline": "baseline",
            "direct": f"direct {dict(self.arch_options)}",
            "subspace": f"{self.projection} d={self.d}" + (" said" if self.scaling == "said" else ""),
            "pretrain": "pretrain θ₀",
        }[self.role]
        start = f" from {self.theta0.label()}" if self.theta0 is not None else ""
        return f"{self.architecture}/{self.task} {what}{start} seed={self.seed} lr={self.recipe.lr:g}"


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
    """(train, test) tensors of the run's dataset, restricted to its classes (if any), then
    subsetted as the spec says."""
    from projbench.datasets import load_dataset, select_classes

    def split(name: str) -> tuple[Any, Any]:
        data = load_dataset(spec.dataset, name, data_dir)
        return select_classes(data, spec.classes) if spec.classes else data

    return _subset(split("train"), spec.train_subset), _subset(split("test"), spec.test_subset)


def build_model(spec: RunSpec, train_data: tuple[Any, Any] | None = None) -> Any:
    """The module a run trains: the model (its θ₀ trained elsewhere if ``theta0`` says so, then
    burned in), wrapped in a SubspaceModel for subspace runs."""
    import torch

    from projbench.architectures import make_model
    from projbench.training import train

    kwargs = dict(spec.arch_options)
    model = make_model(
        spec.architecture, spec.dataset, seed=spec.seed, num_classes=spec.num_classes, **kwargs
    )
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(spec.dtype)
    if dtype is None:
        raise InvalidArgumentError(f"dtype must be float32 or float64, got {spec.dtype!r}")
    model = model.to(dtype=dtype)
    if spec.theta0 is not None:
        _start_from_theta0(model, spec)
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
        if spec.theta0 is not None:  # the burned-in θ₀ is no recipe's: an export stores it
            _mark_theta0(model, include=True)
    from projbench.subspace import SubspaceModel

    return SubspaceModel(
        model,
        spec.projection,
        int(spec.d or 0),
        seed=spec.seed,
        per_layer=spec.per_layer,
        device=spec.device,
        scaling=spec.scaling,
        **dict(spec.options),
    )


def _start_from_theta0(model: Any, spec: RunSpec) -> None:
    """Copy the trained θ₀ of ``spec`` into ``model`` (all but the classifier head) and record
    on the model's origin how to rebuild it (a θ₀ recipe) or that it must be stored."""
    from projbench.transfer import apply_theta0, load_state

    theta0 = spec.theta0
    assert theta0 is not None
    if not theta0.path:
        raise InvalidArgumentError(
            f"{spec.label()}: the θ₀ weights have no file (a study keeps a pretraining's in "
            "OUT/theta0/; give Theta0(path=...) elsewhere)"
        )
    state = load_state(theta0.path, theta0.sha256 if theta0.source == "checkpoint" else None)
    apply_theta0(model, state, f"θ₀ weights {theta0.path}")
    _mark_theta0(model, include=theta0.source == "checkpoint", spec=spec)


def _mark_theta0(model: Any, *, include: bool, spec: RunSpec | None = None) -> None:
    from dataclasses import replace as _replace

    from projbench.architectures import attach_origin, origin_of
    from projbench.transfer import export_recipe

    origin = origin_of(model)
    if origin is None:
        return
    recipe = origin.theta0_recipe
    if spec is not None and spec.theta0 is not None:
        recipe = export_recipe(spec.theta0, spec)
    keep = include or origin.include_theta0
    attach_origin(model, _replace(origin, theta0_recipe=recipe, include_theta0=keep))


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
    (with ``D`` set as an attribute). A pretraining writes its trained weights to
    ``save_weights`` (:func:`projbench.transfer.save_state`) and sets ``weights_sha256``.
    Raises on bad input; see :func:`execute_run`."""
    result, model = _train(spec, data_dir, measure)
    result.weights_sha256 = None  # type: ignore[attr-defined]
    if spec.save_weights is not None:
        from projbench.transfer import save_state

        if not spec.save_weights:
            raise InvalidArgumentError(f"{spec.label()}: no file to keep the pretrained weights in")
        result.weights_sha256 = save_state(model, spec.save_weights)  # type: ignore[attr-defined]
    return result


def pretrain_network(spec: RunSpec, data_dir: str | None = None) -> Any:
    """Train ``spec`` (full training) in this process and return the trained network (on the
    run's device; nothing is written): what a ``pretrain`` run keeps."""
    if spec.projection is not None:
        raise InvalidArgumentError("a pretraining is full training: it takes no projection")
    return _train(replace(spec, save_weights=None), data_dir, None)[1]


def _train(spec: RunSpec, data_dir: str | None, measure: dict[str, Any] | None) -> tuple[Any, Any]:
    """(TrainResult with ``D`` and ``cond_P_sample`` set, the trained module) of ``spec``."""
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
        return result, model
    finally:
        torch.set_num_threads(previous_threads)
        if spec.fwht_backend:
            use_backend(previous_backend)


def execute_run(
    spec: RunSpec, data_dir: str | None = None, measure: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train ``spec`` in this process and return its record. Never raises for a failing run:
    any exception is recorded as ``failed`` with its error (a diverged run is ``diverged``)."""
    import torch

    start = time.perf_counter()
    worker: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    record = RunRecord(spec.run_id, spec.identity, "failed", worker=worker)
    try:
        worker["cpu_allocator"] = allocator_info()["policy"]  # set by the process's entry point
        # the vector unit torch's CPU kernels use (AVX2, AVX512, ...): their rounding differs, so
        # one recipe can give slightly different accuracies on two CPUs
        worker["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        record.provenance = run_provenance(
            spec.architecture, spec.dataset, spec.projection, data_dir, spec.fwht_backend,
            theta0_dataset=spec.theta0.dataset if spec.theta0 is not None else None,
        )
        result = train_run(spec, data_dir, measure)
        kept_apart = ("history", "status", "step_losses", "curve")
        stats = {k: v for k, v in result.to_dict().items() if k not in kept_apart}
        stats["D"] = result.D
        if result.cond_P_sample is not None:
            stats["cond_P_sample"] = result.cond_P_sample
        if result.weights_sha256 is not None:
            stats["weights_sha256"] = result.weights_sha256
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


def parameter_count(
    architecture: str, dataset: str, arch_options: dict[str, Any] | None = None, *,
    num_classes: int | None = None,
) -> int:
    """D of an architecture on a dataset (with ``num_classes`` outputs instead of the
    dataset's, for a class-filtered task), counted on the meta device (no memory, no data)."""
    import torch

    from projbench.architectures import count_parameters, make_model

    with torch.device("meta"):
        model = make_model(architecture, dataset, num_classes=num_classes, **(arch_options or {}))
    return count_parameters(model)


def tensor_count(architecture: str, dataset: str, *, num_classes: int | None = None) -> int:
    """n: the number of trainable parameter tensors (what ``scaling="said"`` gives a scale
    each), counted on the meta device."""
    import torch

    from projbench.architectures import make_model

    with torch.device("meta"):
        model = make_model(architecture, dataset, num_classes=num_classes)
    return sum(1 for p in model.parameters() if p.requires_grad)


__all__ = [
    "ROLES",
    "RunRecord",
    "RunSpec",
    "build_model",
    "execute_run",
    "load_run_data",
    "parameter_count",
    "pretrain_network",
    "tensor_count",
    "train_run",
]
