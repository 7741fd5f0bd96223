"""A study: (architecture, dataset) pairs × projections × seeds × recipe × search,
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
    [run]      train_subset, test_subset, device = "cpu"|"cuda"|"auto", dtype, threads, per_layer,
               scaling = "none"|"said"
    [axes]     lr = [...], optimizer = [...], batch_size = [...], epochs = [...],
               weight_decay = [...], schedule = [...], burn_in = [0, 100],
               scaling = ["none", "said"], theta0 = ["scratch", {from = "pretrain", ...}]
               (the product of the listed values; each combination is its own variant with
               its own baselines and d_int90)
    [direct]   sizes = 6, lrs = [1e-3, 3e-3]   (directly trained small networks)
    [[pairs]]  architecture, dataset, and any overrides of search/recipe/run keys and
               `projections` (a subset of the labels above) for that pair; `classes = [5, 6,
               7, 8, 9]` (a class-filtered task) and `theta0 = "scratch"` or
               {from = "pretrain", dataset, classes, seed, recipe = {...}, train_subset,
               test_subset} or {from = "checkpoint", path} (:mod:`projbench.transfer`)

The resolved spec (:meth:`StudySpec.to_dict`) is what a study folder stores; resuming compares
it key by key (:func:`spec_differences`).
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

from projbench.errors import InvalidArgumentError
from projbench.search import SEARCH_METHODS, validate_search

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
RUN_KEYS = (
    "train_subset", "test_subset", "device", "dtype", "threads", "per_layer", "fwht_backend", "scaling"
)
#: axes that are not recipe fields (a variant's recipe leaves them out)
NON_RECIPE_AXES = ("burn_in", "scaling", "theta0")
AXIS_KEYS = (*(k for k in RECIPE_KEYS if k != "eval_epochs"), *NON_RECIPE_AXES)
#: per-tensor scalings of a subspace run (:class:`projbench.SubspaceModel`)
SCALINGS = ("none", "said")
#: a pair's own keys besides search, recipe and run keys
PAIR_KEYS = ("architecture", "dataset", "projections", "classes", "theta0")
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
    "scaling": "none",
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
    """One (architecture, dataset) pair with its fully resolved settings.

    ``classes`` (empty: all) restricts the dataset to those labels (renumbered 0..k−1);
    ``theta0`` is the resolved θ₀ source table (None: a fresh initialisation; see
    :func:`projbench.transfer.resolve_theta0`)."""

    architecture: str
    dataset: str
    projections: list[str]
    search: dict[str, Any]
    recipe: dict[str, Any]
    run: dict[str, Any]
    classes: list[int] = field(default_factory=list)
    theta0: dict[str, Any] | None = None

    @property
    def task(self) -> str:
        """``mnist`` or, with a class filter, ``mnist[5-9]``."""
        from projbench.transfer import task_label

        return task_label(self.dataset, self.classes)

    @property
    def label(self) -> str:
        return f"{self.architecture}/{self.task}"

    @property
    def num_classes(self) -> int | None:
        """The model's outputs: len(classes), or None for the dataset's own classes."""
        return len(self.classes) or None

    def to_dict(self) -> dict[str, Any]:
        """As a study folder stores it: ``classes`` and ``theta0`` only when set (so the
        stored spec of a study without them is what it always was)."""
        out = asdict(self)
        if not self.classes:
            del out["classes"]
        if self.theta0 is None:
            del out["theta0"]
        return out


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
            "pairs": [p.to_dict() for p in self.pairs],
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
            sources = {theta0_label(v.get("theta0", pair.theta0)) for v in self.variants()} - {"scratch"}
            total_lo += len(sources)  # each pretraining or checkpoint, once
            total_hi += len(sources)
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
# typed checks: every field's type and range, before anything is resolved or run
# ------------------------------------------------------------------------------------------
#: most torch threads one run may ask for (far above any machine's cores; asking OpenMP for
#: many more makes the process crash while it starts them)
MAX_THREADS = 256
#: most seeds in one study (every seed repeats every run)
MAX_SEEDS = 10_000
#: the seeds torch and every projection accept (:data:`projbench.projection.SEED_RANGE`)
SEED_BOUNDS = (-(2**63), 2**63 - 1)
#: most optimisation steps of a burn-in
MAX_BURN_IN = 10_000_000
#: most columns of the stability measure's condition number
MAX_CONDITION_COLUMNS = 10_000
DEVICE_PATTERN = re.compile(r"cpu|auto|mps|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class Field:
    """What one spec value may hold.

    ``kind``: ``int``, ``number`` (finite int or float), ``bool``, ``name`` (a non-empty
    string), ``text`` (any string), ``choice`` (one of ``choices``), ``device`` or ``ints`` (a
    non-empty list of integers); ``lo``..``hi`` bound numbers and list items (``lo_open``:
    ``lo`` itself excluded); ``optional``: None (the key left out) is allowed.
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has this field's type and lies in its range."""
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind in ("name", "text"):
            return isinstance(value, str) and (self.kind == "text" or bool(value.strip()))
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "device":
            return isinstance(value, str) and DEVICE_PATTERN.fullmatch(value) is not None
        if self.kind == "ints":
            return isinstance(value, list) and bool(value) and all(self._number_ok(v, int) for v in value)
        return self._number_ok(value, int if self.kind == "int" else (int, float))

    def _number_ok(self, value: Any, types: type | tuple[type, ...]) -> bool:
        if isinstance(value, bool) or not isinstance(value, types):
            return False
        number = float(cast(float, value))
        if not math.isfinite(number):
            return False
        above_lo = self.lo is None or (number > self.lo if self.lo_open else number >= self.lo)
        return above_lo and (self.hi is None or number <= self.hi)

    def describe(self) -> str:
        """What to give, in words (``an integer in 1..256``)."""
        words = {
            "bool": "true or false (unquoted)",
            "name": "a non-empty string",
            "text": "a string",
            "choice": f"one of {', '.join(map(repr, self.choices))}",
            "device": "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'",
            "ints": "a non-empty list of integers",
            "int": "an integer",
            "number": "a number",
        }[self.kind]
        return words + self._range_text() + (" (or leave the key out)" if self.optional else "")

    def _range_text(self) -> str:
        lo, hi = _bound(self.lo), _bound(self.hi)
        if lo is None and hi is None:
            return ""
        if hi is None:
            return f" {'>' if self.lo_open else '>='} {lo}"
        if lo is None:
            return f" <= {hi}"
        return f" in ({lo}, {hi}]" if self.lo_open else f" in {lo}..{hi}"


def _bound(value: float | None) -> str | None:
    """A range bound as people write it: ``10,000,000``, ``0.5``."""
    if value is None:
        return None
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 2**63 else f"{value:g}"


SEARCH_FIELDS: dict[str, Field] = {
    "method": Field("choice", choices=SEARCH_METHODS),
    "d_min": Field("int", lo=1),
    "d_max": Field("int", lo=2),
    "rtol": Field("number", lo=0, lo_open=True),
    "grid": Field("ints", lo=1, optional=True),
    "points_per_round": Field("int", lo=1, hi=1000),
    "threshold": Field("number", lo=0, hi=1, lo_open=True),
    "baseline": Field("choice", choices=("local", "global")),
    "accuracy": Field("choice", choices=ACCURACY_CHOICES),
}
RUN_FIELDS: dict[str, Field] = {
    "train_subset": Field("int", lo=1, optional=True),
    "test_subset": Field("int", lo=1, optional=True),
    "device": Field("device"),
    "dtype": Field("choice", choices=("float32", "float64")),
    "threads": Field("int", lo=1, hi=MAX_THREADS),
    "per_layer": Field("bool"),
    "fwht_backend": Field("name", optional=True),
    "scaling": Field("choice", choices=SCALINGS),
}
#: the checks of axis values that are not recipe fields (those are checked by Recipe; theta0 by
#: :func:`projbench.transfer.resolve_theta0`)
AXIS_FIELDS: dict[str, Field] = {
    "burn_in": Field("int", lo=0, hi=MAX_BURN_IN),
    "scaling": Field("choice", choices=SCALINGS),
}
#: the checks of the command line's overrides that are not search, recipe or run fields
OVERRIDE_FIELDS: dict[str, Field] = {**SEARCH_FIELDS, **RUN_FIELDS, "seeds": Field("int", lo=1, hi=MAX_SEEDS)}


def _kind_of(value: Any) -> str:
    """``a string``, ``an integer``, ... for a message."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def check_field(where: str, key: str, value: Any, rule: Field) -> None:
    """Refuse ``value`` unless ``rule`` accepts it: one line naming where, what to give and
    what was given."""
    if not rule.accepts(value):
        raise InvalidArgumentError(
            f"{where}{key}: give {rule.describe()}, not {value!r} ({_kind_of(value)})"
        )


def check_fields(where: str, table: dict[str, Any], rules: dict[str, Field]) -> None:
    """:func:`check_field` for every key of ``table`` that ``rules`` knows."""
    for key, value in table.items():
        if key in rules:
            check_field(where, key, value, rules[key])


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def _table(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``data[key]`` (a TOML table, {} when absent) with only ``allowed`` keys."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"{key}: give a table ([{key}] with keys {', '.join(allowed)}), not {value!r} ({_kind_of(value)})"
        )
    _check_keys(value, allowed, f"[{key}]")
    return dict(value)


def _projection_entry(item: Any) -> ProjectionEntry:
    if isinstance(item, str) and item.strip():
        return ProjectionEntry(item, item, {})
    if not isinstance(item, dict):
        raise InvalidArgumentError(
            f"projections entry: give a name or a table {{label, name, options}}, not {item!r}"
        )
    _check_keys(item, ("label", "name", "options"), "projections entry")
    check_field("projections entry ", "name", item.get("name"), Field("name"))
    name = item["name"]
    check_field(f"projections entry {name!r} ", "label", item.get("label", name), Field("name"))
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise InvalidArgumentError(
            f"projections entry {name!r} options: give a table (options = {{key = value}}), "
            f"not {options!r} ({_kind_of(options)})"
        )
    return ProjectionEntry(str(item.get("label", name)), name, dict(options))


def _projection_entries(raw: Any) -> list[ProjectionEntry]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgumentError("projections must be a non-empty list of names or {label, name, options}")
    entries = [_projection_entry(item) for item in raw]
    labels = [e.label for e in entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise InvalidArgumentError(
            f"projection label(s) used twice: {', '.join(dup)}; give each a unique label"
        )
    return entries


def _seeds(raw: Any, where: str = "seeds") -> list[int]:
    """``n`` (0..n-1) or a list of distinct integer seeds, at most :data:`MAX_SEEDS`."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        check_field("", where, raw, OVERRIDE_FIELDS["seeds"])
        return list(range(raw))
    lo, hi = SEED_BOUNDS
    if not Field("ints", lo=lo, hi=hi).accepts(raw) or len(raw) > MAX_SEEDS:
        raise InvalidArgumentError(
            f"{where}: give a count 1..{MAX_SEEDS} or a list of at most {MAX_SEEDS} integers, "
            f"not {raw!r} ({_kind_of(raw)})"
        )
    if len(set(raw)) != len(raw):
        raise InvalidArgumentError(f"{where} repeat: {raw}; list each seed once")
    return list(raw)


def _checked_overrides(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The command line's overrides without None values, each checked like its spec field
    (named as its option, e.g. ``--threads``)."""
    out = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in out.items():
        option = "--" + key.replace("_", "-")
        if key in OVERRIDE_FIELDS:
            check_field("", option, value, OVERRIDE_FIELDS[key])
        elif key not in (*RECIPE_KEYS, "projections"):
            raise InvalidArgumentError(f"cannot override {key!r}")
    return out


def _axes(data: dict[str, Any]) -> dict[str, list[Any]]:
    """``[axes]``: each a non-empty list of distinct values (recipe values are checked per pair)."""
    axes = _table(data, "axes", AXIS_KEYS)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise InvalidArgumentError(f"[axes] {key} must be a non-empty list of values")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise InvalidArgumentError(
                f"[axes] {key} lists {repeated[0]!r} more than once; list each value once"
            )
        for i, value in enumerate(values):
            if key == "theta0" and isinstance(value, dict) and value.get("from") == "checkpoint":
                values[i] = _theta0_table(value, "[axes] ", {}, {}, "")  # fingerprint the file now
            check_fields("[axes] ", {key: value}, AXIS_FIELDS)
    return axes


def _theta0_table(
    value: Any, where: str, recipe: dict[str, Any], run: dict[str, Any], dataset: str
) -> dict[str, Any] | None:
    """:func:`projbench.transfer.resolve_theta0` of a spec's ``theta0`` value."""
    from projbench.transfer import resolve_theta0

    return resolve_theta0(value, where, dataset=dataset, recipe=recipe, run=run)


def variant_text(variant: dict[str, Any], theta0: str | None = None) -> str:
    """``lr=0.001, scaling=said, theta0=pretrain mnist[0-4]`` ('-' for no axes); ``theta0``, if
    given, is the label of the variant's resolved θ₀."""
    return ", ".join(f"{k}={axis_value_text(k, v, theta0)}" for k, v in variant.items()) or "-"


def axis_value_text(key: str, value: Any, theta0: str | None = None) -> Any:
    """How an axis value is shown: a θ₀ by ``theta0`` (its resolved label) or its own label
    (:func:`projbench.transfer.theta0_label`), anything else as it is."""
    if key != "theta0":
        return value
    return theta0 if theta0 is not None else theta0_label(value)


def theta0_label(value: Any) -> str:
    from projbench.transfer import theta0_label as label

    return label(value)


def _direct(data: dict[str, Any]) -> dict[str, Any]:
    direct = _table(data, "direct", ("sizes", "lrs"))
    if not direct:
        return {}
    sizes, lrs = direct.get("sizes", 6), direct.get("lrs", [])
    check_field("[direct] ", "sizes", sizes, Field("int", lo=2, hi=64))
    if not isinstance(lrs, list) or not all(Field("number", lo=0, lo_open=True).accepts(x) for x in lrs):
        raise InvalidArgumentError(f"[direct] lrs must be a list of positive learning rates, got {lrs!r}")
    return {"sizes": sizes, "lrs": [float(x) for x in lrs]}


def _measure(data: dict[str, Any]) -> dict[str, Any]:
    measure = _table(data, "measure", ("condition_columns",))
    k = measure.get("condition_columns", 0)
    check_field("[measure] ", "condition_columns", k, Field("int", lo=0, hi=MAX_CONDITION_COLUMNS))
    return {"condition_columns": k} if k else {}


def _check_axis_recipes(pair: PairSpec, axes: dict[str, list[Any]]) -> None:
    """Every axis value must make a valid recipe for the pair (checked once per value)."""
    from projbench.training import Recipe

    for key, values in axes.items():
        if key == "theta0":
            for value in values:
                _theta0_table(value, f"[axes] theta0 for {pair.label}: ", pair.recipe, pair.run, pair.dataset)
            continue
        if key in AXIS_FIELDS:
            continue
        for value in values:
            try:
                Recipe(**{**pair.recipe, key: value})
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"[axes] {key} = {value!r} for {pair.label}: {exc}") from None


def _check_search(search: dict[str, Any]) -> None:
    validate_search(
        search["method"],
        d_min=search["d_min"],
        d_max=search["d_max"],
        rtol=search["rtol"],
        threshold=search["threshold"],
        grid=search["grid"],
        points_per_round=search["points_per_round"],
    )


def _pair(
    i: int, raw: Any, labels: list[str], tops: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
) -> PairSpec:
    """``pairs[i]`` with its settings resolved: defaults, then the top tables, then its own keys."""
    from projbench.training import Recipe, default_weight_decay

    if not isinstance(raw, dict):
        raise InvalidArgumentError(
            f"pairs[{i}]: give a table ([[pairs]] with architecture and dataset), not {raw!r}"
        )
    _check_keys(raw, (*PAIR_KEYS, *SEARCH_KEYS, *RECIPE_KEYS, *RUN_KEYS), f"pairs[{i}]")
    arch, ds = raw.get("architecture"), raw.get("dataset")
    if not Field("name").accepts(arch) or not Field("name").accepts(ds):
        raise InvalidArgumentError(f"pairs[{i}] needs architecture and dataset names")
    where = f"pairs[{i}] ({arch}/{ds}) "
    check_fields(where, raw, {**SEARCH_FIELDS, **RUN_FIELDS})
    search_top, recipe_top, run_top = tops
    search = {**DEFAULT_SEARCH, **search_top, **{k: raw[k] for k in SEARCH_KEYS if k in raw}}
    run = {**DEFAULT_RUN, **run_top, **{k: raw[k] for k in RUN_KEYS if k in raw}}
    recipe_fields = {**recipe_top, **{k: raw[k] for k in RECIPE_KEYS if k in raw}}
    recipe_fields.setdefault("weight_decay", default_weight_decay(arch))
    try:
        recipe = Recipe(**recipe_fields).to_dict()  # validates
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}recipe: {exc}") from None
    chosen = raw.get("projections", labels)
    if not isinstance(chosen, list) or not all(isinstance(p, str) for p in chosen) or not chosen:
        raise InvalidArgumentError(f"{where}projections: give a list of the study's labels, not {chosen!r}")
    missing = [p for p in chosen if p not in labels]
    if missing:
        raise InvalidArgumentError(f"pairs[{i}] ({arch}/{ds}) names unknown projection(s) {missing}")
    if len(set(chosen)) != len(chosen):
        raise InvalidArgumentError(f"{where}projections lists a label twice: {chosen}; list each once")
    _check_search(search)
    from projbench.transfer import check_classes_shape

    classes = check_classes_shape(raw["classes"], where) if "classes" in raw else []
    theta0 = _theta0_table(raw.get("theta0"), where, recipe, run, str(ds))
    return PairSpec(str(arch), str(ds), list(chosen), search, recipe, run, classes, theta0)


def resolve(
    data: dict[str, Any], name: str = "study", *, overrides: dict[str, Any] | None = None
) -> StudySpec:
    """Validate a parsed TOML study and resolve every pair's settings (defaults, overrides).

    Every value's type and range is checked first (:data:`SEARCH_FIELDS`, :data:`RUN_FIELDS`,
    the recipe's own checks, seeds, axes, projections): a wrong one is one
    :class:`InvalidArgumentError` naming the key. ``overrides`` (from the command line)
    replace top-level search/recipe/run keys for every pair.
    """
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"a study must be a table of keys, not {_kind_of(data)}")
    _check_keys(data, TOP_KEYS, "study")
    for key, rule in (("name", Field("name")), ("description", Field("text")), ("notes", Field("text"))):
        if key in data:
            check_field("", key, data[key], rule)
    overrides = _checked_overrides(overrides)
    if "seeds" in overrides:
        seeds = _seeds(overrides.pop("seeds"), "--seeds")
    else:
        seeds = _seeds(data.get("seeds", 1))
    projections = _projection_entries(overrides.pop("projections", data.get("projections")))
    labels = [p.label for p in projections]
    search_top = _table(data, "search", SEARCH_KEYS)
    recipe_top = _table(data, "recipe", RECIPE_KEYS)
    run_top = _table(data, "run", RUN_KEYS)
    check_fields("[search] ", search_top, SEARCH_FIELDS)
    check_fields("[run] ", run_top, RUN_FIELDS)
    for key, value in overrides.items():
        if key in SEARCH_KEYS:
            search_top[key] = value
        elif key in RECIPE_KEYS:
            recipe_top[key] = value
        else:
            run_top[key] = value
    axes = _axes(data)
    direct = _direct(data)
    measure = _measure(data)
    raw_pairs = data.get("pairs")
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise InvalidArgumentError("a study needs at least one [[pairs]] entry (architecture, dataset)")
    pairs = [_pair(i, raw, labels, (search_top, recipe_top, run_top)) for i, raw in enumerate(raw_pairs)]
    for pair in pairs:
        _check_axis_recipes(pair, axes)
    trained_theta0 = any(p.theta0 is not None for p in pairs) or any(
        v != "scratch" for v in axes.get("theta0", ()))
    if direct and trained_theta0:
        raise InvalidArgumentError(
            "[direct] networks are trained from scratch: a study with a trained theta0 cannot have "
            "them; leave [direct] out"
        )
    return StudySpec(
        str(data.get("name", name)),
        str(data.get("description", "")),
        str(data.get("notes", "")),
        seeds,
        projections,
        pairs,
        axes,
        direct,
        measure,
    )


def check_stored_spec(stored: Any, where: str) -> None:
    """Refuse a resolved spec (as a study folder stores it) whose fields have the wrong type
    or range, with the same checks as :func:`resolve`: one line naming ``where`` it came from."""
    if not isinstance(stored, dict) or not isinstance(stored.get("pairs"), list):
        raise InvalidArgumentError(f"{where}: the stored study spec is damaged (no list of pairs)")
    flat_pairs = []
    for pair in stored["pairs"]:
        if not isinstance(pair, dict):
            raise InvalidArgumentError(f"{where}: the stored study spec is damaged (a pair is {pair!r})")
        _check_keys(pair, (*PAIR_KEYS, "search", "recipe", "run"), f"{where}: stored pair")
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
    "check_field",
    "check_stored_spec",
    "load_spec",
    "preset_names",
    "read_toml",
    "resolve",
    "spec_differences",
]
