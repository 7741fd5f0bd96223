"""θ₀ from a trained network: subspace fine-tuning, θ = θ_pre + P θ_d.

Li et al. 2018 start every subspace run at a random initialisation θ₀. Aghajanyan et al. 2020
("Intrinsic dimensionality explains the effectiveness of language model fine-tuning") start it
at a *pretrained* network instead and find that fine-tuning needs far fewer dimensions than
training from scratch. A :class:`Theta0` says where θ₀ comes from:

* ``pretrain`` — full training of the same architecture on a source task (``dataset``,
  optionally ``classes``), with its own recipe and seed. In a study it runs once, before any run
  that needs it, and its weights are kept in the study folder as ``theta0/<run id>.pt`` (the
  pretraining run's id, a hash of everything that changes its result); a later run or a resumed
  study loads that file instead of training again.
* ``checkpoint`` — a state dict file of the architecture (``torch.save(model.state_dict())``),
  identified by the SHA-256 of its bytes.

Files are written with ``torch.save`` of a plain ``{name: tensor}`` dict (CPU tensors, written
to a temporary name and renamed, so a file is whole or absent) and read with
``torch.load(..., weights_only=True)``, which unpickles tensors and plain containers only:
a file cannot make the loader run code.

**The classifier head is re-initialised for the target task.** The head is the last
``nn.Linear`` of the model (in ``model.modules()`` order; the last layer of every built-in
architecture). A run with a trained θ₀ builds its model exactly as a run from scratch would —
``make_model(architecture, dataset, seed=<run seed>, num_classes=k)`` — and then copies every
parameter and buffer of the trained network into it *except* the head's weight and bias. So
the head has the architecture's own initialisation (He-normal weights and zero biases for the
built-ins) drawn with the run's seed: the very head the from-scratch run of that seed starts
with, and of the target task's size k whatever the source task's was. Every other tensor must
match in name and shape.

**Class-filtered tasks** (``classes``): :func:`projbench.datasets.select_classes` keeps the
examples whose label is listed and renumbers label ``classes[j]`` as ``j``; the model then has
k = len(classes) outputs. MNIST digits 0–4 then 5–9, or CIFAR-10's animals (labels 2–7) then
its vehicles (0, 1, 8, 9), are split tasks that need no new data.

**Shipping** (:meth:`projbench.SubspaceModel.export`): a model whose θ₀ was pretrained records
the θ₀ recipe (kind ``pretrain``: source dataset, classes, seed, subset, recipe, dtype and
thread count, registered here with :func:`projbench.export.register_theta0_recipe`);
:func:`projbench.load_subspace` redoes the pretraining on the freshly built model (it needs the
source data) and checks θ₀'s fingerprint. A θ₀ read from a checkpoint cannot be rebuilt from
names, so the export stores θ₀ itself (D more numbers).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from projbench.errors import InvalidArgumentError
from projbench.recipe import Recipe

if TYPE_CHECKING:
    from torch import nn

    from projbench.training_runs import RunSpec

#: where θ₀ may come from
THETA0_SOURCES = ("pretrain", "checkpoint")
#: the θ₀ recipe kind that :func:`projbench.load_subspace` redoes for a pretrained θ₀
PRETRAIN_RECIPE = "pretrain"
#: the θ₀ recipe kind recorded (not redone: θ₀ is stored) for a checkpoint
CHECKPOINT_RECIPE = "checkpoint"
#: largest checkpoint read (checked before reading)
MAX_CHECKPOINT_BYTES = 4 * 1024**3


def classes_text(classes: tuple[int, ...] | list[int]) -> str:
    """``5-9`` for a run of consecutive ascending labels, else ``0,1,8,9``."""
    cls = list(classes)
    if len(cls) > 2 and cls == list(range(cls[0], cls[0] + len(cls))):
        return f"{cls[0]}-{cls[-1]}"
    return ",".join(map(str, cls))


def task_label(dataset: str, classes: tuple[int, ...] | list[int] = ()) -> str:
    """``mnist`` or, with a class filter, ``mnist[5-9]``."""
    return f"{dataset}[{classes_text(classes)}]" if classes else dataset


@dataclass(frozen=True)
class Theta0:
    """Where a run's θ₀ comes from (module docstring).

    ``source`` is ``pretrain`` or ``checkpoint``. A pretraining trains the run's architecture
    on ``dataset`` (restricted to ``classes`` when given) with ``recipe`` and ``seed`` on
    ``train_subset`` examples (all when None); ``test_subset`` only sizes its evaluation. A
    checkpoint is the file whose SHA-256 is ``sha256``. ``path`` is where the weights are read
    (for a pretraining: where the study keeps them); it is not part of any identity.
    """

    source: str
    dataset: str | None = None
    classes: tuple[int, ...] = ()
    recipe: Recipe | None = None
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    path: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.source not in THETA0_SOURCES:
            raise InvalidArgumentError(f"theta0 from: give one of {THETA0_SOURCES}, not {self.source!r}")
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        if self.source == "pretrain" and (self.dataset is None or self.recipe is None):
            raise InvalidArgumentError("a pretrained θ₀ needs a dataset and a recipe")
        if self.source == "checkpoint" and not self.sha256:
            raise InvalidArgumentError("a checkpoint θ₀ needs the SHA-256 of its file")

    def identity(self) -> dict[str, Any]:
        """What changes θ₀ (JSON-safe): for a pretraining its data, classes, recipe, seed and
        subset (its architecture, device, dtype and threads are the run's own); for a
        checkpoint the file's SHA-256."""
        if self.source == "checkpoint":
            return {"from": "checkpoint", "sha256": self.sha256}
        assert self.recipe is not None
        out: dict[str, Any] = {"from": "pretrain", "dataset": self.dataset, "seed": self.seed,
                               "recipe": self.recipe.identity_dict(), "train_subset": self.train_subset}
        if self.classes:
            out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any]) -> Theta0:
        """Inverse of :meth:`identity` (``path`` and ``test_subset`` unset)."""
        if identity.get("from") == "checkpoint":
            return cls("checkpoint", sha256=str(identity["sha256"]))
        return cls("pretrain", str(identity["dataset"]), tuple(identity.get("classes") or ()),
                   Recipe(**identity["recipe"]), int(identity["seed"]), identity.get("train_subset"))

    @classmethod
    def from_spec(cls, table: Mapping[str, Any]) -> Theta0:
        """From the resolved ``theta0`` table of a study spec (:func:`resolve_theta0`)."""
        if table["from"] == "checkpoint":
            return cls("checkpoint", path=str(table["path"]), sha256=str(table["sha256"]))
        return cls("pretrain", str(table["dataset"]), tuple(table.get("classes") or ()),
                   Recipe(**table["recipe"]), int(table["seed"]), table.get("train_subset"),
                   table.get("test_subset"))

    def label(self) -> str:
        """``pretrain mnist[0-4]`` or ``checkpoint NAME``: what a table shows."""
        if self.source == "checkpoint":
            return f"checkpoint {Path(self.path).name if self.path else (self.sha256 or '')[:12]}"
        return f"pretrain {task_label(self.dataset or '?', self.classes)}"

    def with_path(self, path: str | os.PathLike[str] | None) -> Theta0:
        return replace(self, path=None if path is None else str(path))


def theta0_label(value: Any) -> str:
    """The label of a study's ``theta0`` value: ``scratch``, ``pretrain mnist[0-4]``, ``checkpoint
    NAME`` (a table is labelled without resolving it)."""
    if value is None or value == "scratch":
        return "scratch"
    if isinstance(value, Mapping):
        if value.get("from") == "checkpoint":
            return f"checkpoint {Path(str(value.get('path', '?'))).name}"
        dataset = str(value.get("dataset", "") or "")
        classes = value.get("classes") or ()
        return "pretrain" + (f" {task_label(dataset, classes)}" if dataset else "") + (
            "" if dataset or not classes else f" [{classes_text(classes)}]")
    return str(value)


# ------------------------------------------------------------------------------------------
# the spec's theta0 value: "scratch" or a table
# ------------------------------------------------------------------------------------------
PRETRAIN_KEYS = ("from", "dataset", "classes", "seed", "recipe", "train_subset", "test_subset")
CHECKPOINT_KEYS = ("from", "path", "sha256")


def check_classes_shape(value: Any, where: str) -> list[int]:
    """A ``classes`` value's shape: a list of at least two distinct labels ≥ 0 (their range is
    checked against the dataset later, :func:`projbench.datasets.check_classes`)."""
    ok = isinstance(value, list) and len(value) >= 2 and all(
        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**31 for c in value)
    if not ok:
        raise InvalidArgumentError(
            f"{where}classes: give a list of at least two class labels (integers >= 0), not {value!r}"
        )
    if len(set(value)) != len(value):
        raise InvalidArgumentError(f"{where}classes lists a label twice: {value}; list each once")
    return list(value)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_theta0(
    value: Any, where: str, *, dataset: str, recipe: Mapping[str, Any], run: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The resolved form of a study's ``theta0`` value, or None for ``"scratch"``.

    ``{from = "pretrain", dataset, classes, seed, recipe = {...}, train_subset, test_subset}``:
    ``dataset`` defaults to the pair's, ``classes`` to all, ``seed`` to 0, the subsets to the
    pair's, and ``recipe`` keys override the pair's recipe. ``{from = "checkpoint", path}``: the
    path is made absolute and the file's SHA-256 added (a stored spec carries it already, and
    the file is not read). Wrong keys, types or values are one line naming ``where``.
    """
    if value is None or value == "scratch":
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{where}theta0: give \"scratch\" or a table {{from = \"pretrain\", ...}} / "
            f"{{from = \"checkpoint\", path = ...}}, not {value!r}"
        )
    source = value.get("from")
    if source not in THETA0_SOURCES:
        raise InvalidArgumentError(
            f"{where}theta0: give from = \"pretrain\" or from = \"checkpoint\", not {source!r}"
        )
    allowed = PRETRAIN_KEYS if source == "pretrain" else CHECKPOINT_KEYS
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"{where}theta0 (from = {source!r}): unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(allowed)}"
        )
    if source == "checkpoint":
        return _resolve_checkpoint(value, where)
    return _resolve_pretrain(value, where, dataset=dataset, recipe=recipe, run=run)


def _resolve_checkpoint(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    path = value.get("path")
    if not isinstance(path, str) or not path.strip():
        raise InvalidArgumentError(f"{where}theta0 path: give the checkpoint file's path, not {path!r}")
    sha = value.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                and all(c in "0123456789abcdef" for c in sha)):
        raise InvalidArgumentError(f"{where}theta0 sha256: give 64 lowercase hex digits, not {sha!r}")
    full = Path(path).expanduser()
    if sha is None:
        full = full.resolve()
        if not full.is_file():
            raise InvalidArgumentError(f"{where}theta0 path: {path} is not a file; give a state dict file")
        sha = file_sha256(full)
    return {"from": "checkpoint", "path": str(full), "sha256": sha}


def _resolve_pretrain(
    value: Mapping[str, Any], where: str, *, dataset: str, recipe: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    from projbench.study.spec_fields import RECIPE_KEYS, RUN_FIELDS, Field, check_field

    source_ds = value.get("dataset", dataset)
    check_field(f"{where}theta0 ", "dataset", source_ds, Field("name"))
    classes = check_classes_shape(value["classes"], f"{where}theta0 ") if value.get("classes") else []
    seed = value.get("seed", 0)
    check_field(f"{where}theta0 ", "seed", seed, Field("int", lo=-(2**63), hi=2**63 - 1))
    out: dict[str, Any] = {"from": "pretrain", "dataset": source_ds, "classes": classes, "seed": seed}
    for key in ("train_subset", "test_subset"):
        out[key] = value.get(key, run.get(key))
        check_field(f"{where}theta0 ", key, out[key], RUN_FIELDS[key])
    changes = value.get("recipe", {})
    if not isinstance(changes, Mapping):
        raise InvalidArgumentError(f"{where}theta0 recipe: give a table of recipe keys, not {changes!r}")
    unknown = sorted(set(changes) - set(RECIPE_KEYS))
    if unknown:
        raise InvalidArgumentError(
            f"{where}theta0 recipe: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(RECIPE_KEYS)}"
        )
    try:
        out["recipe"] = Recipe(**{**recipe, **changes}).to_dict()
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}theta0 recipe: {exc}") from None
    return out


# ------------------------------------------------------------------------------------------
# models and files
# ------------------------------------------------------------------------------------------
def classifier_head(model: nn.Module) -> str:
    """The name of the model's classifier head: its last ``nn.Linear`` in ``modules()`` order."""
    from torch import nn

    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise InvalidArgumentError(
            f"{type(model).__name__} has no nn.Linear layer: a trained θ₀ needs a classifier head "
            "(the model's last nn.Linear) to re-initialise"
        )
    return names[-1]


def head_keys(model: nn.Module) -> set[str]:
    """The state dict keys of the classifier head (its weight and bias)."""
    head = classifier_head(model)
    prefix = f"{head}." if head else ""
    return {k for k in model.state_dict() if k.startswith(prefix) and "." not in k[len(prefix):]}


def check_transferable(model: nn.Module, state: Mapping[str, Any], where: str) -> None:
    """Refuse ``state`` unless it holds every tensor of ``model`` except the head, with the same
    shapes (extra keys other than the head's mean another architecture)."""
    own = model.state_dict()
    skip = head_keys(model)
    missing = [k for k in own if k not in skip and k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise InvalidArgumentError(
            f"{where}: the θ₀ weights do not belong to {type(model).__name__} ({what}); give a "
            "state dict of the same architecture"
        )
    for k, v in own.items():
        if k in skip:
            continue
        got = tuple(getattr(state[k], "shape", ()))
        if got != tuple(v.shape):
            raise InvalidArgumentError(
                f"{where}: θ₀ tensor {k!r} has shape {list(got)}, the model's {list(v.shape)}; give a "
                "state dict of the same architecture and options"
            )


def apply_theta0(model: nn.Module, state: Mapping[str, Any], where: str = "θ₀") -> nn.Module:
    """Copy ``state`` into ``model`` in place — every parameter and buffer except the classifier
    head's, which keeps the model's own initialisation (module docstring). Returns ``model``."""
    import torch

    check_transferable(model, state, where)
    skip = head_keys(model)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k not in skip:
                v.copy_(state[k].to(dtype=v.dtype, device=v.device))
    return model


def load_state(path: str | os.PathLike[str], sha256: str | None = None) -> dict[str, Any]:
    """A state dict file read with ``torch.load(weights_only=True)`` (tensors and plain
    containers only), checked to be ``{name: tensor}``; with ``sha256`` the file's bytes must
    have that fingerprint. Every failure is one line naming the file."""
    import torch

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read θ₀ weights {p}: {exc.strerror or exc}") from None
    if size > MAX_CHECKPOINT_BYTES:
        raise InvalidArgumentError(f"θ₀ weights {p} have {size:,} bytes, over {MAX_CHECKPOINT_BYTES:,}")
    if sha256 is not None and file_sha256(p) != sha256:
        raise InvalidArgumentError(
            f"θ₀ weights {p} changed since the study recorded them (SHA-256 differs); restore the file "
            "or start another study"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgumentError(f"θ₀ weights {p} cannot be read as a state dict ({first[:200]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InvalidArgumentError(
            f"θ₀ weights {p} are not a plain state dict ({{name: tensor}}, as model.state_dict() gives)"
        )
    return state


def save_state(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Write ``model``'s state dict (CPU copies) to ``path`` with ``torch.save``, atomically (a
    temporary file in the same folder, then a rename); returns the file's SHA-256."""
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(target)


# ------------------------------------------------------------------------------------------
# export: the θ₀ recipe of a pretrained θ₀
# ------------------------------------------------------------------------------------------
def export_recipe(theta0: Theta0, run: RunSpec) -> dict[str, Any]:
    """The θ₀ recipe (JSON scalars) that an export records for ``run``'s θ₀: for a pretraining
    everything :func:`projbench.load_subspace` needs to redo it; for a checkpoint its SHA-256
    (a record only: θ₀ is then stored)."""
    if theta0.source == "checkpoint":
        return {"kind": CHECKPOINT_RECIPE, "sha256": theta0.sha256}
    assert theta0.recipe is not None
    out: dict[str, Any] = {
        "kind": PRETRAIN_RECIPE, "dataset": theta0.dataset, "classes": classes_text(theta0.classes),
        "seed": theta0.seed, "train_subset": theta0.train_subset, "dtype": run.dtype,
        "threads": run.threads,
    }
    for key, value in theta0.recipe.to_dict().items():
        if key != "eval_epochs":  # changes what is recorded, never the weights
            out[f"recipe.{key}"] = value
    return out


def _redo_pretrain(model: nn.Module, recipe: Mapping[str, Any]) -> None:
    """The registered ``pretrain`` θ₀ recipe: train the source network again (data from
    ``$PROJBENCH_DATA``) on the model's device and copy it into ``model`` but for the head."""
    import torch

    from projbench.architectures import origin_of
    from projbench.training_runs import RunSpec, pretrain_network

    origin = origin_of(model)
    if origin is None:
        raise InvalidArgumentError("the pretrain θ₀ recipe needs the model's origin (make_model with a seed)")
    fields = {k.removeprefix("recipe."): v for k, v in recipe.items() if k.startswith("recipe.")}
    classes = _expand(str(recipe.get("classes") or ""))
    device = next(iter(model.parameters())).device
    spec = RunSpec(origin.architecture, str(recipe["dataset"]), int(recipe["seed"]), Recipe(**fields),
                   classes=classes, train_subset=recipe.get("train_subset"), device=str(device),
                   dtype=str(recipe.get("dtype", "float32")), threads=int(recipe.get("threads", 1)),
                   arch_options=tuple(dict(origin.options).items()))
    source = pretrain_network(spec, None)
    with torch.no_grad():
        apply_theta0(model, source.state_dict(), "the pretrain θ₀ recipe")


def _expand(text: str) -> tuple[int, ...]:
    """``5-9`` -> (5, 6, 7, 8, 9); ``0,1,8,9`` -> (0, 1, 8, 9)."""
    if "-" in text:
        lo, hi = (int(x) for x in text.split("-"))
        return tuple(range(lo, hi + 1))
    return tuple(int(c) for c in text.split(",") if c)


def _register() -> None:
    from projbench.export import register_theta0_recipe

    register_theta0_recipe(PRETRAIN_RECIPE, _redo_pretrain)


_register()


__all__ = [
    "CHECKPOINT_RECIPE",
    "PRETRAIN_RECIPE",
    "THETA0_SOURCES",
    "Theta0",
    "apply_theta0",
    "check_classes_shape",
    "check_transferable",
    "classes_text",
    "classifier_head",
    "export_recipe",
    "file_sha256",
    "head_keys",
    "load_state",
    "resolve_theta0",
    "save_state",
    "task_label",
    "theta0_label",
]
