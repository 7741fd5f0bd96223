"""Study files in and out: a preset name or a TOML path read and resolved into a
:class:`~projbench.study.spec.StudySpec` (:func:`load_spec`), and the resolved spec a study
folder stores checked for damage (:func:`check_stored_spec`) and compared key by key with a new
one (:func:`spec_differences`: a resume with a different spec is refused).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.study.spec import StudySpec
from projbench.study.spec_fields import PAIR_KEYS, check_keys
from projbench.study.spec_resolve import resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: keys added after study folders had been stored, with the value their runs used: an old
#: stored spec that lacks one of them equals a new spec that has this value
LEGACY_SPEC_DEFAULTS: dict[str, Any] = {
    "recipe.beta1": 0.9,
    "recipe.beta2": 0.999,
    "recipe.eps": 1e-8,
    "recipe.weight_decay_on": "trainable",
    "search.accuracy": "final",
    "run.scaling": "none",
}


def preset_names() -> list[str]:
    """Names of the presets shipped as package data."""
    folder = resources.files("projbench.study") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_text(path: Path) -> str:
    """A study file's text: UTF-8, else one line saying so."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"study file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read study file {path}: {exc.strerror or exc}") from None


def read_toml(source: str) -> tuple[dict[str, Any], str]:
    """The parsed TOML of a preset name or a file path, and the study's name."""
    path = Path(source)
    if path.suffix == ".toml" or path.is_file() or (path.exists() and source not in preset_names()):
        if not path.is_file():
            raise InvalidArgumentError(
                f"study file {source} does not exist; give a preset "
                f"({', '.join(preset_names())}) or a TOML file"
            )
        text, name = _read_text(path), path.stem
    else:
        if source not in preset_names():
            import difflib

            close = difflib.get_close_matches(source, preset_names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"no preset or file named {source!r}; presets: {', '.join(preset_names())}.{hint}"
            )
        text = (resources.files("projbench.study") / "presets" / f"{source}.toml").read_text(encoding="utf-8")
        name = source
    try:
        return tomllib.loads(text), name
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"{source}: invalid TOML: {exc}") from None


def load_spec(source: str, overrides: dict[str, Any] | None = None) -> StudySpec:
    """A preset name or a TOML path, resolved."""
    data, name = read_toml(source)
    return resolve(data, name, overrides=overrides)


def check_stored_spec(stored: Any, where: str) -> None:
    """Refuse a resolved spec (as a study folder stores it) whose fields have the wrong type
    or range, with the same checks as :func:`resolve`: one line naming ``where`` it came from."""
    if not isinstance(stored, dict) or not isinstance(stored.get("pairs"), list):
        raise InvalidArgumentError(f"{where}: the stored study spec is damaged (no list of pairs)")
    flat_pairs = []
    for pair in stored["pairs"]:
        if not isinstance(pair, dict):
            raise InvalidArgumentError(f"{where}: the stored study spec is damaged (a pair is {pair!r})")
        check_keys(pair, (*PAIR_KEYS, "search", "recipe", "run"), f"{where}: stored pair")
        flat: dict[str, Any] = {k: pair.get(k) for k in ("architecture", "dataset", "projections")}
        flat.update({k: pair[k] for k in ("classes", "theta0") if k in pair})
        for part in ("search", "recipe", "run"):
            table = pair.get(part)
            if not isinstance(table, dict):
                raise InvalidArgumentError(f"{where}: the stored study spec is damaged ({part} is {table!r})")
            flat.update(table)
        flat_pairs.append(flat)
    try:
        resolve({**stored, "pairs": flat_pairs})
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}: the stored study spec is damaged: {exc}") from None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def spec_differences(
    old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = ("description", "notes")
) -> list[str]:
    """``key: old -> new`` for every differing leaf of two resolved specs."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if key.split(".")[0] in ignore:
            continue
        # a key added by a later projbench with the default None is no difference
        if a.get(key) is None and b.get(key) is None:
            continue
        legacy = LEGACY_SPEC_DEFAULTS.get(".".join(key.split(".")[-2:]), "<none>")
        if (key not in a and b.get(key) == legacy) or (key not in b and a.get(key) == legacy):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return out


__all__ = [
    "LEGACY_SPEC_DEFAULTS",
    "check_stored_spec",
    "load_spec",
    "preset_names",
    "read_toml",
    "spec_differences",
]
