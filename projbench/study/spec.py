"""A study (DESIGN §10): (architecture, dataset) pairs × projections × seeds × recipe × search,
declared in TOML and resolved into a fully explicit :class:`StudySpec`.

TOML layout (every table optional except ``pairs``; presets in ``projbench/study/presets``)::

    description = "one line shown by `projbench study --list`"
    notes = "printed with the table (e.g. what a reduced budget means)"
    seeds = [0, 1]                      # or an integer n for 0..n-1
    projections = ["fastfood", "fastjl", {label = "fastjl-report", name = "fastjl",
                                          options = {variant = "report"}}]
    [search]   method = "bisect"|"grid", d_min, d_max, rtol, grid, points_per_round,
               threshold = 0.9, baseline = "local"|"global"
    [recipe]   optimizer, lr, epochs, batch_size, weight_decay, schedule, max_steps, momentum
               (unset weight_decay: Li et al.'s per-architecture L2)
    [run]      train_subset, test_subset, device = "cpu"|"cuda"|"auto", dtype, threads, per_layer
    [axes]     lr = [...], optimizer = [...], batch_size = [...], epochs = [...],
               weight_decay = [...], schedule = [...], burn_in = [0, 100]
               (the product of the listed values; each combination is its own variant with
               its own baselines and d_int90)
    [direct]   sizes = 6, lrs = [1e-3, 3e-3]   (directly trained small networks, issue 10)
    [[pairs]]  architecture, dataset, and any overrides of search/recipe/run keys and
               `projections` (a subset of the labels above) for that pair

The resolved spec (:meth:`StudySpec.to_dict`) is what a study folder stores; resuming compares
it key by key (:func:`spec_differences`).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.search import validate_search

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SEARCH_KEYS = (
    "method", "d_min", "d_max", "rtol", "grid", "points_per_round", "threshold", "baseline", "accuracy"
)
#: which test accuracy of a run a search uses: the last evaluation (Li et al.) or the best of
#: the learning curve's evaluation points
ACCURACY_CHOICES = ("final", "best")
RECIPE_KEYS = (
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "weight_decay",
    "schedule",
    "max_steps",
    "momentum",
    "eval_batch_size",
    "beta1",
    "beta2",
    "eps",
    "weight_decay_on",
    "eval_epochs",
)
RUN_KEYS = ("train_subset", "test_subset", "device", "dtype", "threads", "per_layer", "fwht_backend")
AXIS_KEYS = (*(k for k in RECIPE_KEYS if k != "eval_epochs"), "burn_in")
#: keys added after study folders had been stored, with the value their runs used: an old
#: stored spec that lacks one of them equals a new spec that has this value
LEGACY_SPEC_DEFAULTS: dict[str, Any] = {
    "recipe.beta1": 0.9,
    "recipe.beta2": 0.999,
    "recipe.eps": 1e-8,
    "recipe.weight_decay_on": "trainable",
    "search.accuracy": "final",
}
TOP_KEYS = (
    "description",
    "notes",
    "seeds",
    "projections",
    "search",
    "recipe",
    "run",
    "axes",
    "direct",
    "measure",
    "pairs",
    "name",
)
DEFAULT_SEARCH: dict[str, Any] = {
    "method": "bisect",
    "d_min": 10,
    "d_max": 10000,
    "rtol": 0.1,
    "grid": None,
    "points_per_round": 1,
    "threshold": 0.9,
    "baseline": "local",
    "accuracy": "final",
}
DEFAULT_RUN: dict[str, Any] = {
    "train_subset": None,
    "test_subset": None,
    "device": "cpu",
    "dtype": "float32",
    "threads": 1,
    "per_layer": False,
    "fwht_backend": None,
}


@dataclass(frozen=True)
class ProjectionEntry:
    """A projection as the study names it: ``label`` (unique in the study), registry ``name``
    and its options."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairSpec:
    """One (architecture, dataset) pair with its fully resolved settings."""

    architecture: str
    dataset: str
    projections: list[str]
    search: dict[str, Any]
    recipe: dict[str, Any]
    run: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.architecture}/{self.dataset}"


@dataclass
class StudySpec:
    name: str
    description: str
    notes: str
    seeds: list[int]
    projections: list[ProjectionEntry]
    pairs: list[PairSpec]
    axes: dict[str, list[Any]]
    direct: dict[str, Any]
    measure: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "notes": self.notes,
            "seeds": self.seeds,
            "projections": [asdict(p) for p in self.projections],
            "pairs": [asdict(p) for p in self.pairs],
            "axes": self.axes,
            "direct": self.direct,
            "measure": self.measure,
        }

    def projection(self, label: str) -> ProjectionEntry:
        for p in self.projections:
            if p.label == label:
                return p
        raise InvalidArgumentError(f"no projection labelled {label!r} in the study")

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values ([{}] without axes), in declaration order."""
        if not self.axes:
            return [{}]
        keys = list(self.axes)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.axes[k] for k in keys))]

    def run_count(self) -> str:
        """Rough number of training runs (searches stop early, so bisection is an estimate)."""
        n_var = len(self.variants())
        total_lo = total_hi = 0
        for pair in self.pairs:
            n_base = 3 if pair.search["baseline"] == "global" else 1
            base = len(self.seeds) * n_base * n_var
            chains = len(pair.projections) * len(self.seeds) * n_var
            s = pair.search
            if s["method"] == "grid":
                per = len(s["grid"] or ())
                total_lo += base + chains * per
                total_hi += base + chains * per
            else:
                span = math.log(s["d_max"] / s["d_min"]) / math.log(1 + s["rtol"])
                rounds = max(1, math.ceil(math.log(max(span, 1.0001)) / math.log(s["points_per_round"] + 1)))
                total_lo += base + chains * 1
                total_hi += base + chains * (2 + rounds * s["points_per_round"])
            if self.direct:
                total_hi += (
                    int(self.direct.get("sizes", 0)) * len(self.direct.get("lrs", [1])) * len(self.seeds)
                )
                total_lo += (
                    int(self.direct.get("sizes", 0)) * len(self.direct.get("lrs", [1])) * len(self.seeds)
                )
        return f"{total_hi}" if total_lo == total_hi else f"{total_lo}-{total_hi}"


# ------------------------------------------------------------------------------------------
# loading and resolving
# ------------------------------------------------------------------------------------------
def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def _projection_entries(raw: Any) -> list[ProjectionEntry]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgumentError("projections must be a non-empty list of names or {label, name, options}")
    entries = []
    for item in raw:
        if isinstance(item, str):
            entries.append(ProjectionEntry(item, item, {}))
        elif isinstance(item, dict):
            _check_keys(item, ("label", "name", "options"), "projections entry")
            name = item.get("name")
            if not isinstance(name, str):
                raise InvalidArgumentError(f"projections entry {item!r} needs a name")
            entries.append(ProjectionEntry(str(item.get("label", name)), name, dict(item.get("options", {}))))
        else:
            raise InvalidArgumentError(f"projections entry must be a name or a table, got {item!r}")
    labels = [e.label for e in entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise InvalidArgumentError(
            f"projection label(s) used twice: {', '.join(dup)}; give each a unique label"
        )
    return entries


def _seeds(raw: Any) -> list[int]:
    if isinstance(raw, bool):
        raise InvalidArgumentError(f"seeds must be an integer count or a list of integers, got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise InvalidArgumentError(f"seeds must be >= 1, got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise InvalidArgumentError(f"seeds repeat: {raw}")
        return list(raw)
    raise InvalidArgumentError(f"seeds must be an integer count or a list of integers, got {raw!r}")


def resolve(
    data: dict[str, Any], name: str = "study", *, overrides: dict[str, Any] | None = None
) -> StudySpec:
    """Validate a parsed TOML study and resolve every pair's settings (defaults, overrides).

    ``overrides`` (from the command line) replace top-level search/recipe/run keys for every pair.
    """
    from projbench.training import Recipe, default_weight_decay

    _check_keys(data, TOP_KEYS, "study")
    overrides = dict(overrides or {})
    seeds = _seeds(overrides.pop("seeds", data.get("seeds", 1)))
    projections = _projection_entries(overrides.pop("projections", data.get("projections")))
    labels = [p.label for p in projections]
    search_top = dict(data.get("search", {}))
    recipe_top = dict(data.get("recipe", {}))
    run_top = dict(data.get("run", {}))
    _check_keys(search_top, SEARCH_KEYS, "[search]")
    _check_keys(recipe_top, RECIPE_KEYS, "[recipe]")
    _check_keys(run_top, RUN_KEYS, "[run]")
    for key, value in overrides.items():
        if value is None:
            continue
        if key in SEARCH_KEYS:
            search_top[key] = value
        elif key in RECIPE_KEYS:
            recipe_top[key] = value
        elif key in RUN_KEYS:
            run_top[key] = value
        else:
            raise InvalidArgumentError(f"cannot override {key!r}")
    axes = dict(data.get("axes", {}))
    _check_keys(axes, AXIS_KEYS, "[axes]")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise InvalidArgumentError(f"[axes] {key} must be a non-empty list of values")
    direct = dict(data.get("direct", {}))
    _check_keys(direct, ("sizes", "lrs"), "[direct]")
    if direct:
        sizes, lrs = direct.get("sizes", 6), direct.get("lrs", [])
        if isinstance(sizes, bool) or not isinstance(sizes, int) or sizes < 2:
            raise InvalidArgumentError(f"[direct] sizes must be an integer >= 2, got {sizes!r}")
        if not isinstance(lrs, list) or not all(isinstance(x, int | float) and x > 0 for x in lrs):
            raise InvalidArgumentError(f"[direct] lrs must be a list of positive learning rates, got {lrs!r}")
        direct = {"sizes": sizes, "lrs": [float(x) for x in lrs]}
    measure = dict(data.get("measure", {}))
    _check_keys(measure, ("condition_columns",), "[measure]")
    k = measure.get("condition_columns", 0)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidArgumentError(f"[measure] condition_columns must be an integer >= 0, got {k!r}")
    raw_pairs = data.get("pairs")
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise InvalidArgumentError("a study needs at least one [[pairs]] entry (architecture, dataset)")
    pairs: list[PairSpec] = []
    for i, raw in enumerate(raw_pairs):
        _check_keys(
            raw,
            ("architecture", "dataset", "projections", *SEARCH_KEYS, *RECIPE_KEYS, *RUN_KEYS),
            f"pairs[{i}]",
        )
        arch, ds = raw.get("architecture"), raw.get("dataset")
        if not isinstance(arch, str) or not isinstance(ds, str):
            raise InvalidArgumentError(f"pairs[{i}] needs architecture and dataset names")
        search = {**DEFAULT_SEARCH, **search_top, **{k: raw[k] for k in SEARCH_KEYS if k in raw}}
        run = {**DEFAULT_RUN, **run_top, **{k: raw[k] for k in RUN_KEYS if k in raw}}
        recipe_fields = {**recipe_top, **{k: raw[k] for k in RECIPE_KEYS if k in raw}}
        recipe_fields.setdefault("weight_decay", default_weight_decay(arch))
        recipe = Recipe(**recipe_fields).to_dict()  # validates
        chosen = list(raw.get("projections", labels))
        missing = [p for p in chosen if p not in labels]
        if missing:
            raise InvalidArgumentError(f"pairs[{i}] ({arch}/{ds}) names unknown projection(s) {missing}")
        validate_search(
            search["method"],
            d_min=search["d_min"],
            d_max=search["d_max"],
            rtol=search["rtol"],
            threshold=search["threshold"],
            grid=search["grid"],
            points_per_round=search["points_per_round"],
        )
        if search["accuracy"] not in ACCURACY_CHOICES:
            raise InvalidArgumentError(
                f"accuracy must be one of {', '.join(ACCURACY_CHOICES)}, got {search['accuracy']!r}"
            )
        if search["baseline"] not in ("local", "global"):
            raise InvalidArgumentError(f"baseline must be local or global, got {search['baseline']!r}")
        if run["dtype"] not in ("float32", "float64"):
            raise InvalidArgumentError(f"dtype must be float32 or float64, got {run['dtype']!r}")
        pairs.append(PairSpec(arch, ds, chosen, search, recipe, run))
    return StudySpec(
        str(data.get("name", name)),
        str(data.get("description", "")),
        str(data.get("notes", "")),
        seeds,
        projections,
        pairs,
        axes,
        direct,
        {"condition_columns": k} if k else {},
    )


def preset_names() -> list[str]:
    """Names of the presets shipped as package data."""
    folder = resources.files("projbench.study") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_toml(source: str) -> tuple[dict[str, Any], str]:
    """The parsed TOML of a preset name or a file path, and the study's name."""
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InvalidArgumentError(
                f"study file {source} does not exist; give a preset "
                f"({', '.join(preset_names())}) or a TOML file"
            )
        text, name = path.read_text(encoding="utf-8"), path.stem
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
    "PairSpec",
    "ProjectionEntry",
    "StudySpec",
    "load_spec",
    "preset_names",
    "read_toml",
    "resolve",
    "spec_differences",
]
