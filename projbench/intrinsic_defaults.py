"""The defaults that give ``intrinsic-dim`` a first d_int90 on every built-in pair without tuning.

* The search range ends at D: a d_max (or grid points) above the model's D is clipped to D,
  with one line saying so (:func:`clip_search`).
* The recipe, when not given (:func:`default_recipe`): Adam at lr :data:`DEFAULT_LR` = 1e-2 and

      epochs = max(BASE_EPOCHS, ⌈MIN_STEPS / ⌈N / batch⌉⌉)

  (:func:`default_epochs`), i.e. 10 epochs, or more on a small training set so that every run
  takes at least 500 optimisation steps (digits, N = 1,437: 42 epochs). Li et al.'s lr 1e-3
  goes with their 100 epochs: at 10 epochs a subspace run at 1e-3 is far from converged (mlp on
  digits, fastfood d = 1,000: 0.59 test accuracy at 1e-3, 0.95 at 1e-2, against 0.96-0.98 for
  full training), and the search then blames d_max.
* The study folder is ``intrinsic-ARCH-DATASET-PROJ…[-per-layer][-burn-in-STEPS]``
  (:func:`folder_name`), so the same command resumes the same folder.

A search that still misses its target is explained by one probe run at the largest d
(:mod:`projbench.intrinsic_probe`). Nothing here imports torch at module level: the command's
help text uses these numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any

from projbench.errors import InvalidArgumentError

#: the learning rate intrinsic-dim uses when --lr is not given (see the module docstring)
DEFAULT_LR = 1e-2
#: the fewest optimisation steps per run the default number of epochs gives
MIN_STEPS = 500
#: the epochs of Li et al.'s recipe shortened as the study presets do; more on small datasets
BASE_EPOCHS = 10


def folder_name(arch: str, dataset: str, projections: list[str], per_layer: bool, burn_in: int = 0) -> str:
    """``intrinsic-ARCH-DATASET-PROJ…[-per-layer][-burn-in-STEPS]``, safe as a folder name."""
    extra = (["per-layer"] if per_layer else []) + ([f"burn-in-{burn_in}"] if burn_in else [])
    stem = "-".join(["intrinsic", arch, dataset, *projections, *extra])
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem)


def default_epochs(n_train: int, batch_size: int) -> int:
    """max(BASE_EPOCHS, ⌈MIN_STEPS / ⌈N / batch⌉⌉): at least MIN_STEPS steps per run."""
    return max(BASE_EPOCHS, math.ceil(MIN_STEPS / math.ceil(n_train / batch_size)))


def default_recipe(
    dataset: str, data_dir: str | None, train_subset: int | None, given: dict[str, Any]
) -> dict[str, Any]:
    """The recipe fields given on the command line, with intrinsic-dim's defaults for lr
    (:data:`DEFAULT_LR`) and epochs (:func:`default_epochs` of the run's training-set size)."""
    from projbench.recipe import Recipe
    from projbench.study.plan import split_sizes, subset_size

    recipe = dict(given)
    if recipe.get("lr") is None:
        recipe["lr"] = DEFAULT_LR
    if recipe.get("epochs") is None:
        n_train = subset_size(split_sizes(dataset, data_dir).train, train_subset)
        recipe["epochs"] = default_epochs(n_train, recipe.get("batch_size") or Recipe().batch_size)
    return recipe


def clip_search(
    num_params: int, d_min: int, d_max: int, grid: list[int] | None, search: str
) -> tuple[int, list[int] | None, str | None]:
    """(d_max, grid) limited to D = ``num_params``, and the line that says what was clipped
    (None when nothing was). A search left with nothing to try is refused."""
    if search == "grid":
        from projbench.search import DEFAULT_GRID

        full = list(grid) if grid is not None else list(DEFAULT_GRID)
        kept = [d for d in full if d <= num_params]
        if not kept:
            raise InvalidArgumentError(
                f"every grid point exceeds D = {num_params:,}; give a --grid with values <= D"
            )
        dropped = [d for d in full if d > num_params]
        note = (f"grid points above D = {num_params:,} dropped ({', '.join(f'{d:,}' for d in dropped)})"
                if dropped else None)
        return d_max, kept, note
    if d_min >= num_params:
        raise InvalidArgumentError(f"--d-min {d_min:,} must be below D = {num_params:,}")
    if d_max > num_params:
        return num_params, grid, f"d_max {d_max:,} exceeds D = {num_params:,}: searching d <= D"
    return d_max, grid, None
