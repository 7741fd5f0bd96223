"""Seeded, device-aware, NaN-aware training and evaluation on in-memory tensors.

Data are ``(inputs, labels)`` tensor pairs (what :func:`projbench.load_dataset` returns): inputs
(N, ...) float, labels (N,) int64. Batches are index slices of a permutation drawn from a CPU
``torch.Generator`` seeded with ``seed`` (one permutation per epoch), so a run is reproducible
and independent of the global RNG; no DataLoader, no worker processes. The loss is the mean
cross-entropy of the model's logits.

:class:`~projbench.recipe.Recipe` (:mod:`projbench.recipe`) says how to train; Li et al.'s
defaults live there. Weight decay is classic L2 on the trainable parameters — θ_d for a
:class:`projbench.SubspaceModel` — or Keras' L2 on the effective kernels (``weight_decay_on``).

A non-finite training loss stops the run: the result has ``status="diverged"`` and the step
in ``diverged_at_step``; nothing is raised. Test accuracy is still measured (rows whose logits
are not finite count as wrong).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from projbench.errors import InvalidArgumentError
from projbench.recipe import Recipe

Data = tuple[torch.Tensor, torch.Tensor]
#: progress(step, total_steps, loss) called after every optimisation step
ProgressFn = Callable[[int, int, float], None]

#: a step's loss above SPIKE_FACTOR × the median of the previous SPIKE_WINDOW losses is a spike
SPIKE_FACTOR = 2.0
SPIKE_WINDOW = 20


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    n: int


@dataclass
class TrainResult:
    """Outcome of :func:`train`. ``history`` has one dict per (partly) run epoch.

    ``epochs`` is steps / steps-per-epoch (fractional with ``max_steps`` or divergence);
    ``wall_s`` covers training and every evaluation. ``curve`` is the learning curve: one dict
    ``{epoch, step, test_accuracy, test_loss}`` per evaluation point
    (:meth:`Recipe.eval_points`), the last one being the final result. ``loss_spikes`` counts the steps whose
    training loss exceeds ``SPIKE_FACTOR`` × the median of the previous ``SPIKE_WINDOW`` steps
    (a non-finite loss counts as a spike); ``max_loss_jump`` is the largest such ratio.
    """

    test_accuracy: float
    test_loss: float
    train_loss: float
    steps: int
    epochs: float
    status: str = "ok"
    diverged_at_step: int | None = None
    wall_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_spikes: int = 0
    max_loss_jump: float = float("nan")
    curve: list[dict[str, Any]] = field(default_factory=list)
    eval_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loss_spikes(losses: list[float], factor: float = SPIKE_FACTOR, window: int = SPIKE_WINDOW
                ) -> tuple[int, float]:
    """(number of spikes, largest loss / running-median ratio) of a sequence of step losses.

    Step t (t ≥ ``window``) is a spike when loss_t > ``factor`` × median(loss_{t−window..t−1});
    a non-finite loss is a spike with ratio inf. Fewer than ``window`` + 1 losses: (0, nan).
    """
    import statistics

    spikes, worst = 0, float("nan")
    for t in range(window, len(losses)):
        ref = statistics.median(losses[t - window:t])
        value = losses[t]
        ratio = value / ref if ref > 0 and math.isfinite(value) else float("inf")
        if not math.isfinite(value) or ratio > factor:
            spikes += 1
        if not (worst >= ratio):
            worst = ratio
    return spikes, worst


def _resolve_device(device: torch.device | str | None, model: nn.Module) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _check_data(data: Data, what: str) -> None:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise InvalidArgumentError(f"{what} must be an (inputs, labels) pair of tensors")
    x, y = data
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise InvalidArgumentError(f"{what} must hold tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.shape[0] != y.shape[0] or y.dim() != 1 or x.shape[0] == 0:
        raise InvalidArgumentError(
            f"{what}: inputs {tuple(x.shape)} and labels {tuple(y.shape)} must be non-empty and "
            "share the first dimension; labels must be 1-D"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Data, batch_size: int = 1024, device: torch.device | str | None = None
) -> EvalResult:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (model in eval mode meanwhile).

    Rows whose logits are not all finite count as wrong; the loss is then NaN/inf as computed.
    """
    _check_data(data, "evaluation data")
    dev = _resolve_device(device, model)
    was_training = model.training
    model.eval()
    x_all, y_all = data
    correct, loss_sum, n = 0, 0.0, int(y_all.shape[0])
    try:
        for start in range(0, n, batch_size):
            xb = x_all[start:start + batch_size].to(dev, non_blocking=True)
            yb = y_all[start:start + batch_size].to(dev, non_blocking=True)
            logits = model(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            finite = torch.isfinite(logits).all(dim=1)
            correct += int(((logits.argmax(dim=1) == yb) & finite).sum())
    finally:
        model.train(was_training)
    return EvalResult(accuracy=correct / n, loss=loss_sum / n, n=n)


def _make_optimizer(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser; its weight decay is 0 when the L2 term is on the kernels
    (then :func:`kernel_l2` adds it to the loss)."""
    wd = recipe.weight_decay if recipe.weight_decay_on == "trainable" else 0.0
    if recipe.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2), eps=recipe.eps, weight_decay=wd
        )
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=wd)


def _effective_weights(model: nn.Module) -> tuple[dict[str, torch.Tensor] | None, list[torch.Tensor]]:
    """(parameter dict to call the model with or None, the kernels: weights with ≥ 2 dims).

    For a :class:`projbench.SubspaceModel` the kernels are the views of θ = θ₀ + Pθ_d computed
    once for this step (the forward reuses them, so P is applied once); for any other model,
    its own parameters with ≥ 2 dimensions.
    """
    from projbench.subspace import SubspaceModel

    if isinstance(model, SubspaceModel):
        params = model.parameter_dict()
        return params, [p for p in params.values() if p.dim() >= 2]
    return None, [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]


def kernel_l2(kernels: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖W‖² over ``kernels`` (Keras' ``l2`` regulariser without its coefficient)."""
    return torch.stack([(w * w).sum() for w in kernels]).sum()


def _forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Mean cross-entropy of a batch, plus wd·Σ‖W‖² when the L2 term is on the kernels."""
    if recipe.weight_decay_on != "kernels" or recipe.weight_decay == 0:
        return F.cross_entropy(model(x), y)
    params, kernels = _effective_weights(model)
    if params is not None:
        from torch.func import functional_call

        logits = functional_call(model.model, params, (x,))  # type: ignore[arg-type]
    else:
        logits = model(x)
    return F.cross_entropy(logits, y) + recipe.weight_decay * kernel_l2(kernels)


@contextlib.contextmanager
def _seeded_rngs(dev: torch.device, seed: int) -> Iterator[None]:
    """The global CPU generator, and ``dev``'s CUDA generator on a GPU, seeded with ``seed`` for
    the block inside a forked RNG state: dropout and other stochastic layers draw from them,
    and the caller's RNG comes back untouched. Only what ``fork_rng`` restores is seeded
    (``torch.manual_seed`` would reseed every CUDA device and leave them changed)."""
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.random.default_generator.manual_seed(int(seed))
        if dev.type == "cuda":
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(int(seed))
        yield


class _TrainingLoop:
    """One run's optimisation: the optimizer and schedule, the step counter, the status
    (``ok`` or ``diverged`` at the first non-finite loss), the step losses, the per-epoch
    history and the learning curve."""

    def __init__(self, model: nn.Module, params: list[nn.Parameter], train_data: Data,
                 test_data: Data | None, recipe: Recipe, dev: torch.device,
                 progress: ProgressFn | None) -> None:
        self.model, self.test_data, self.recipe, self.dev, self.progress = (
            model, test_data, recipe, dev, progress)
        self.x_all, self.y_all = train_data
        self.n = int(self.y_all.shape[0])
        self.steps_per_epoch = math.ceil(self.n / recipe.batch_size)
        total = recipe.epochs * self.steps_per_epoch
        self.total = min(total, recipe.max_steps) if recipe.max_steps is not None else total
        self.eval_points: set[int] = (set(recipe.eval_points(self.steps_per_epoch, self.total))
                                      if test_data is not None else set())
        self.optimizer = _make_optimizer(params, recipe)
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total)
                          if recipe.schedule == "cosine" else None)
        self.step, self.status = 0, "ok"
        self.diverged_at: int | None = None
        self.last_loss = float("nan")
        self.step_losses: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.curve: list[dict[str, Any]] = []
        self.eval_s = 0.0

    def evaluate_now(self) -> EvalResult:
        """Test accuracy and loss now (eval mode, no_grad: training itself is unchanged), kept
        as a point of the learning curve."""
        assert self.test_data is not None
        t0 = time.perf_counter()
        ev = evaluate(self.model, self.test_data, self.recipe.eval_batch_size, self.dev)
        self.eval_s += time.perf_counter() - t0
        self.curve.append({"epoch": self.step / self.steps_per_epoch, "step": self.step,
                           "test_accuracy": ev.accuracy, "test_loss": ev.loss})
        return ev

    def _optimisation_step(self, idx: torch.Tensor) -> torch.Tensor | None:
        """One step on the batch ``idx``; its loss, or None when the loss is not finite (the
        run has diverged and nothing was updated). One sync per step (``item``) stops on NaN at once."""
        loss = _forward_loss(self.model, self.x_all[idx], self.y_all[idx], self.recipe)
        loss_value = loss.detach().item()
        self.step_losses.append(loss_value)
        if not math.isfinite(loss_value):
            self.status, self.diverged_at, self.last_loss = "diverged", self.step, loss_value
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        self.last_loss = loss_value
        if self.progress is not None:
            self.progress(self.step, self.total, loss_value)
        return loss

    def run_epoch(self, epoch: int, gen: torch.Generator) -> None:
        """Epoch ``epoch`` (0-based) over a permutation drawn from ``gen``, until the step
        budget or a divergence; its mean training loss joins the history, and the curve gets a
        point when the epoch ends on an evaluation step other than the last."""
        perm = torch.randperm(self.n, generator=gen).to(self.dev)
        batch = self.recipe.batch_size
        epoch_loss = torch.zeros((), device=self.dev)
        epoch_steps = 0
        for b in range(self.steps_per_epoch):
            if self.step >= self.total:
                break
            loss = self._optimisation_step(perm[b * batch:(b + 1) * batch])
            if loss is None:
                break
            epoch_steps += 1
            epoch_loss += loss.detach()
        if epoch_steps:
            self.history.append({"epoch": epoch + 1, "step": self.step,
                                 "train_loss": float(epoch_loss) / epoch_steps})
        if self.status == "ok" and self.step in self.eval_points and self.step < self.total:
            self.evaluate_now()


def train(
    model: nn.Module,
    train_data: Data,
    test_data: Data | None,
    recipe: Recipe | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train the trainable parameters of ``model`` with ``recipe``; evaluate on ``test_data``.

    Steps per epoch = ⌈N / batch_size⌉ (the last batch may be smaller); total steps =
    epochs × that, capped by ``recipe.max_steps``. The permutation of epoch e is drawn from
    ``torch.Generator().manual_seed(seed)`` (one generator for the run); dropout and other
    stochastic layers draw from the global RNG, seeded with ``seed`` inside a forked RNG state
    so the caller's RNG is untouched. With ``test_data=None`` the test fields are NaN.
    """
    recipe = recipe or Recipe()
    _check_data(train_data, "training data")
    if test_data is not None:
        _check_data(test_data, "test data")
    dev = _resolve_device(device, model)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidArgumentError(f"{type(model).__name__} has no trainable parameters")

    x_all, y_all = train_data
    loop = _TrainingLoop(model, params, (x_all.to(dev), y_all.to(dev)), test_data, recipe, dev, progress)
    gen = torch.Generator().manual_seed(int(seed))
    start_time = time.perf_counter()
    with _seeded_rngs(dev, seed):
        model.train()
        for epoch in range(recipe.epochs):
            if loop.step >= loop.total or loop.status != "ok":
                break
            loop.run_epoch(epoch, gen)
    ev = loop.evaluate_now() if test_data is not None else None
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start_time
    spikes, jump = loss_spikes(loop.step_losses)
    return TrainResult(
        test_accuracy=ev.accuracy if ev else float("nan"), test_loss=ev.loss if ev else float("nan"),
        train_loss=float(loop.history[-1]["train_loss"] if loop.history else loop.last_loss),
        steps=loop.step, epochs=loop.step / loop.steps_per_epoch, status=loop.status,
        diverged_at_step=loop.diverged_at, wall_s=wall, history=loop.history, loss_spikes=spikes,
        max_loss_jump=jump, curve=loop.curve, eval_s=loop.eval_s,
    )
