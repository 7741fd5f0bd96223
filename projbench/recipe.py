"""How a run trains: :class:`Recipe` (optimiser, learning rate, Adam's betas, epochs, batch size,
L2 and where it acts, schedule, step cap, evaluation points) and its defaults.

The defaults are Li et al. 2018's recipe (Adam, lr 1e-3, minibatch 128) except the light L2
weight decay, which depends on the architecture: :func:`default_weight_decay` /
:func:`recipe_for` give 1e-5 for FC networks and 1e-4 for the LeNet family (their
supplementary material), from the table :data:`LI_ET_AL_WEIGHT_DECAY`. A recipe is plain data
(no torch): it enters a training run's identity (:mod:`projbench.training_runs`), where fields
added later (:data:`LEGACY_RECIPE_DEFAULTS`) are left out at their old value and the fields
that only change what is recorded (:data:`RECORDING_FIELDS`) are named. :mod:`projbench.training`
runs it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from projbench.errors import InvalidArgumentError

#: Li et al. 2018's light L2 per architecture; anything not listed gets DEFAULT_WEIGHT_DECAY.
LI_ET_AL_WEIGHT_DECAY: dict[str, float] = {
    "fc": 1e-5,
    "mlp": 1e-5,
    "lenet": 1e-4,
    "untied-lenet": 1e-4,
    "fc-lenet": 1e-4,
    "fctied-lenet": 1e-4,
}
DEFAULT_WEIGHT_DECAY = 0.0

OPTIMIZERS = ("adam", "sgd")
#: where the L2 term acts: "trainable" — torch's coupled weight decay on the trained parameters
#: (θ_d in a subspace); "kernels" — Keras' ``l2(wd)`` as Li et al. apply it: wd·Σ‖W‖² added to
#: the loss over the weight matrices and convolution kernels (not biases) of the model's
#: effective weights θ = θ₀ + Pθ_d
WEIGHT_DECAY_ON = ("trainable", "kernels")
#: evaluation epochs of the default learning curve (those ≤ the run's epochs, and the last)
DEFAULT_EVAL_SERIES: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: recipe fields added after studies had been stored, with the value every earlier run used;
#: a run identity omits a field at this value, so the ids of earlier runs stay valid
LEGACY_RECIPE_DEFAULTS: dict[str, Any] = {
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "weight_decay_on": "trainable",
}
#: recipe fields that change what is recorded, never the trained result; ``eval_epochs`` is
#: left out of a run's identity, ``eval_batch_size`` stays in it (it always was: earlier runs'
#: ids depend on it)
RECORDING_FIELDS = ("eval_epochs", "eval_batch_size")
SCHEDULES = ("none", "cosine")


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, learning rate, epochs, batch size, L2, schedule.

    ``max_steps`` (optional) caps the total number of optimisation steps across epochs.
    ``momentum`` is used by SGD only; ``beta1``, ``beta2`` and ``eps`` by Adam (torch's
    defaults 0.9, 0.999, 1e-8; Li et al.'s code uses β2 = 0.99). ``weight_decay_on`` says where
    the L2 term acts (:data:`WEIGHT_DECAY_ON`). ``eval_epochs`` are the epochs after which the
    test set is evaluated for the learning curve (``None``: :data:`DEFAULT_EVAL_SERIES`); the
    last epoch is always evaluated. ``eval_epochs`` and ``eval_batch_size`` change what is
    recorded and how fast, never the trained weights.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 128
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    schedule: str = "none"
    max_steps: int | None = None
    momentum: float = 0.9
    eval_batch_size: int = 1024
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay_on: str = "trainable"
    eval_epochs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.eval_epochs is not None:
            raw = self.eval_epochs
            if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple) or not all(
                isinstance(e, int) and not isinstance(e, bool) and 1 <= e <= 1_000_000 for e in raw
            ):
                raise InvalidArgumentError(
                    f"eval_epochs must be a list of epoch numbers >= 1, got {raw!r}"
                )
            object.__setattr__(self, "eval_epochs", tuple(sorted(set(raw))))
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise InvalidArgumentError(f"{name} must be a number in [0, 1), got {value!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or not 0 < self.eps < 1:
            raise InvalidArgumentError(f"eps must be a number in (0, 1), got {self.eps!r}")
        if self.weight_decay_on not in WEIGHT_DECAY_ON:
            raise InvalidArgumentError(
                f"weight_decay_on must be one of {WEIGHT_DECAY_ON}, got {self.weight_decay_on!r}"
            )
        for name in ("epochs", "batch_size", "eval_batch_size", "max_steps"):
            value = getattr(self, name)
            if not (value is None and name == "max_steps") and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
        for name in ("lr", "weight_decay", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidArgumentError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise InvalidArgumentError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidArgumentError(f"lr must be a positive number, got {self.lr!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise InvalidArgumentError(
                f"epochs, batch_size and eval_batch_size must be >= 1 (got {self.epochs}, "
                f"{self.batch_size}, {self.eval_batch_size})"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidArgumentError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.weight_decay < 0:
            raise InvalidArgumentError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.eval_epochs is not None:
            out["eval_epochs"] = list(self.eval_epochs)
        return out

    def identity_dict(self) -> dict[str, Any]:
        """The fields that change the trained result: :meth:`to_dict` without the recording
        fields, and without later-added fields at their :data:`LEGACY_RECIPE_DEFAULTS` value
        (so an earlier run's identity is unchanged)."""
        out = self.to_dict()
        out.pop("eval_epochs", None)
        for key, legacy in LEGACY_RECIPE_DEFAULTS.items():
            if out.get(key) == legacy:
                del out[key]
        return out

    def eval_points(self, steps_per_epoch: int, total_steps: int) -> list[int]:
        """Steps after which the test set is evaluated: the end of every epoch in
        ``eval_epochs`` (or the default series) that training reaches, and the last step."""
        series = self.eval_epochs if self.eval_epochs is not None else DEFAULT_EVAL_SERIES
        points = {e * steps_per_epoch for e in series if e * steps_per_epoch < total_steps}
        return sorted(points | {total_steps})

    def with_(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def default_weight_decay(arch: str | None) -> float:
    """Li et al.'s light L2 for architecture ``arch`` (1e-5 FC, 1e-4 LeNet family; else 0)."""
    return LI_ET_AL_WEIGHT_DECAY.get(arch or "", DEFAULT_WEIGHT_DECAY)


def recipe_for(arch: str | None = None, **overrides: Any) -> Recipe:
    """Li et al.'s recipe with the weight decay of ``arch``; ``overrides`` (not None) win."""
    base = Recipe(weight_decay=default_weight_decay(arch))
    return base.with_(**overrides)


__all__ = [
    "DEFAULT_EVAL_SERIES",
    "DEFAULT_WEIGHT_DECAY",
    "LEGACY_RECIPE_DEFAULTS",
    "LI_ET_AL_WEIGHT_DECAY",
    "OPTIMIZERS",
    "RECORDING_FIELDS",
    "SCHEDULES",
    "WEIGHT_DECAY_ON",
    "Recipe",
    "default_weight_decay",
    "recipe_for",
]
