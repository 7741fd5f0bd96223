"""What ``study`` and ``intrinsic-dim`` check before anything runs or a folder is made.

Every mistake is one line: each pair's device (``auto`` resolved once, CUDA without CUDA
refused), the names of architectures, datasets, projections, options and FWHT backends, the
largest d searched against the model's D, θ₀ transfers, the projections' contract checks (as
``projbench run`` demands), each pair's data (loaded and fingerprinted, subsets no larger than
their split) and the ``--out`` folder itself.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from projbench.commands.options import check_fwht_backend
from projbench.errors import InvalidArgumentError, ProjbenchError


def resolve_devices(spec: Any) -> None:
    """Each pair's device as it will run: "auto" resolves here, once, for the whole study; a
    CUDA device without CUDA is refused now (one line naming the pair)."""
    from projbench.cliutils import resolve_device

    for pair in spec.pairs:
        try:
            pair.run["device"] = resolve_device(pair.run["device"])
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{pair.label}: {exc}") from None


def check_names(spec: Any) -> None:
    """Unknown architectures, datasets, projections, options or FWHT backends fail before
    anything runs, and so does a projection that fails the contract checks ``run`` applies."""
    from projbench.benchmark import validate_options
    from projbench.manager import get_registry
    from projbench.training_runs import parameter_count

    for entry in spec.projections:
        validate_options([entry.name], entry.options)
    for pair in spec.pairs:
        get_registry("architectures").get(pair.architecture)
        get_registry("datasets").get(pair.dataset)
        try:
            check_fwht_backend(pair.run.get("fwht_backend"))
        except ProjbenchError as exc:
            raise InvalidArgumentError(f"{pair.label} fwht_backend: {exc}") from None
        num_params = parameter_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
        s = pair.search
        largest = s["d_max"] if s["method"] == "bisect" else max(s["grid"] or [0])
        if largest > num_params:
            raise InvalidArgumentError(
                f"{pair.label}: the largest d searched ({largest:,}) exceeds D = {num_params:,}; lower d_max "
                "(or the grid) for this pair"
            )
    from projbench.study.checks import check_transfer

    check_transfer(spec)
    _check_contracts(spec)


def _check_contracts(spec: Any) -> None:
    """Every projection (with its options) passes :mod:`projbench.testing`'s contract checks,
    as ``projbench run`` demands, on the CPU and on each other device a pair uses it on."""
    from projbench.benchmark import check_projection_contracts
    from projbench.suites import RunSettings

    for entry in spec.projections:
        devices = {"cpu"} | {p.run["device"] for p in spec.pairs if entry.label in p.projections}
        for device in sorted(devices):
            check_projection_contracts([entry.name], RunSettings(device=device, options=entry.options))


def check_data(spec: Any, data_dir: str | None) -> None:
    """Load and fingerprint each pair's data now (missing or unreadable data is one line, and
    no folder is made), and refuse a train/test subset larger than its split."""
    from projbench.study.checks import check_transfer
    from projbench.study.driver import StudyProvenance

    StudyProvenance(data_dir).check_spec(spec)
    check_transfer(spec, data_dir, load_data=True)
    for pair in spec.pairs:
        if pair.classes:  # the filtered splits' sizes were checked just now
            continue
        for split in ("train", "test"):
            wanted = pair.run.get(f"{split}_subset")
            size = _split_size(pair.dataset, split, data_dir) if wanted is not None else 0
            if wanted is not None and wanted > size:
                raise InvalidArgumentError(
                    f"{pair.label}: {split}_subset = {wanted:,} but the {split} split of {pair.dataset} has "
                    f"{size:,} examples; give at most {size:,}, or leave {split}_subset out to use them all"
                )


@functools.lru_cache(maxsize=16)
def _split_size(dataset: str, split: str, data_dir: str | None) -> int:
    """Number of examples in one split of a dataset (loaded once per process)."""
    from projbench.datasets import load_dataset

    return int(load_dataset(dataset, split, data_dir)[1].shape[0])


def study_folder(out_dir: str) -> Path:
    """``--out`` with symbolic links resolved (the study folder itself), refused in one line when
    it is a file or its ``study.jsonl`` is a link leading out of the folder."""
    from projbench.study.store import FILE_NAME

    try:
        folder = Path(out_dir).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise InvalidArgumentError(f"--out {out_dir} cannot be resolved ({exc}); give a folder") from None
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"--out {out_dir} is not a folder; give a folder (created if missing)")
    file = folder / FILE_NAME
    if file.is_symlink() and file.resolve().parent != folder:
        raise InvalidArgumentError(
            f"{file} is a symbolic link to {file.resolve()}, outside the study folder; "
            "remove it or choose another --out"
        )
    return folder
