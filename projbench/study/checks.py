"""Checks of a study's class filters, θ₀ sources and scalings that need the registries, the
models' shapes or the data — made before any folder is created, each failure one line.

* ``classes``: each label exists in the dataset (0..C−1) and, with the data, each filtered
  split holds examples, at least ``train_subset``/``test_subset`` of them when those are set;
* ``theta0 = {from = "pretrain", ...}``: the source dataset is registered, its classes exist,
  and the source network has every tensor of the target network but the classifier head, with
  the same shapes (both counted on the meta device); its data loads;
* ``theta0 = {from = "checkpoint", ...}``: the file still has the recorded SHA-256, reads with
  ``torch.load(weights_only=True)`` as a plain state dict and fits the architecture likewise;
* ``scaling = "said"``: every d the search may try exceeds n, the model's number of parameter
  tensors (each gets a scale counted in d; :class:`projbench.SubspaceModel`).
"""

from __future__ import annotations

from typing import Any

from projbench.errors import InvalidArgumentError


def _num_classes(dataset: str) -> int:
    from projbench.manager import get_registry

    return int(get_registry("datasets").get(dataset).num_classes)


def _meta_model(architecture: str, dataset: str, num_classes: int | None) -> Any:
    import torch

    from projbench.architectures import make_model

    with torch.device("meta"):
        return make_model(architecture, dataset, num_classes=num_classes)


Classes = list[int] | tuple[int, ...]


def _filtered_size(dataset: str, split: str, classes: Classes, data_dir: str | None) -> int:
    from projbench.datasets import load_dataset, select_classes

    data = load_dataset(dataset, split, data_dir)
    return int((select_classes(data, classes) if classes else data)[1].shape[0])


def _check_data(label: str, dataset: str, classes: Classes, subsets: dict[str, Any],
                data_dir: str | None) -> None:
    from projbench.transfer import task_label

    task = task_label(dataset, classes)
    for split in ("train", "test"):
        size = _filtered_size(dataset, split, classes, data_dir)
        if size == 0:
            raise InvalidArgumentError(
                f"{label}: the {split} split of {task} has no example; give other classes"
            )
        wanted = subsets.get(f"{split}_subset")
        if wanted is not None and wanted > size:
            raise InvalidArgumentError(
                f"{label}: {split}_subset = {wanted:,} but the {split} split of {task} "
                f"has {size:,} examples; give at most {size:,}, or leave {split}_subset out to use them all"
            )


def smallest_d(search: dict[str, Any]) -> int:
    """The smallest d a pair's search may train."""
    if search["method"] == "grid":
        return int(min(search["grid"] or [0]))
    return int(search["d_min"])


def check_transfer(spec: Any, data_dir: str | None = None, *, load_data: bool = False) -> None:
    """Check every pair's ``classes``, θ₀ sources (its own and the ``theta0`` axis's) and
    scalings (module docstring); with ``load_data`` also the filtered splits and each
    pretraining's data."""
    from projbench.datasets import check_classes
    from projbench.training_runs import tensor_count
    from projbench.transfer import (
        Theta0,
        check_transferable,
        classifier_head,
        load_state,
        resolve_theta0,
    )

    for pair in spec.pairs:
        label = pair.label
        if pair.classes:
            check_classes(pair.classes, _num_classes(pair.dataset), f"{label} classes")
        if load_data and pair.classes:
            _check_data(label, pair.dataset, pair.classes, pair.run, data_dir)
        variants = spec.variants()
        scalings = {str(v.get("scaling", pair.run.get("scaling", "none"))) for v in variants}
        if "said" in scalings:
            n = tensor_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
            low = smallest_d(pair.search)
            if low <= n:
                raise InvalidArgumentError(
                    f"{label}: scaling = \"said\" counts one scale per parameter tensor in d and "
                    f"{pair.architecture} has {n} tensors, so every d searched must exceed {n}; the "
                    f"search starts at d = {low}: raise d_min (or the grid) above {n}"
                )
        tables = [v["theta0"] if "theta0" in v else pair.theta0 for v in variants]
        seen: set[str] = set()
        for raw in tables:
            table = resolve_theta0(raw, f"{label} ", dataset=pair.dataset, recipe=pair.recipe, run=pair.run)
            if table is None or repr(table) in seen:
                continue
            seen.add(repr(table))
            theta0 = Theta0.from_spec(table)
            target = _meta_model(pair.architecture, pair.dataset, pair.num_classes)
            classifier_head(target)
            where = f"{label} theta0 ({theta0.label()})"
            if theta0.source == "checkpoint":
                assert theta0.path is not None
                check_transferable(target, load_state(theta0.path, theta0.sha256), where)
                continue
            assert theta0.dataset is not None
            if theta0.classes:
                check_classes(theta0.classes, _num_classes(theta0.dataset), f"{where} classes")
            source = _meta_model(pair.architecture, theta0.dataset, len(theta0.classes) or None)
            check_transferable(target, source.state_dict(), where)
            if load_data:
                subsets = {"train_subset": theta0.train_subset, "test_subset": theta0.test_subset}
                _check_data(where, theta0.dataset, theta0.classes, subsets, data_dir)


__all__ = ["check_transfer", "smallest_d"]
