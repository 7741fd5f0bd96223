"""A study file resolved: (architecture, dataset) pairs × projections × seeds × recipe × search,
declared in TOML, checked value by value and resolved into a fully explicit
:class:`~projbench.study.spec.StudySpec`.

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

The resolved spec (:meth:`~projbench.study.spec.StudySpec.to_dict`) is what a study folder
stores; resuming compares it key by key (:func:`~projbench.study.spec_files.spec_differences`).
"""

from __future__ import annotations

from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.search import validate_search
from projbench.study.spec import PairSpec, ProjectionEntry, StudySpec
from projbench.study.spec_fields import (
    AXIS_FIELDS,
    AXIS_KEYS,
    DEFAULT_RUN,
    DEFAULT_SEARCH,
    MAX_CONDITION_COLUMNS,
    MAX_SEEDS,
    OVERRIDE_FIELDS,
    PAIR_KEYS,
    RECIPE_KEYS,
    RUN_FIELDS,
    RUN_KEYS,
    SEARCH_FIELDS,
    SEARCH_KEYS,
    SEED_BOUNDS,
    TOP_KEYS,
    Field,
    check_field,
    check_fields,
    check_keys,
    kind_of,
)


def _table(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``data[key]`` (a TOML table, {} when absent) with only ``allowed`` keys."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"{key}: give a table ([{key}] with keys {', '.join(allowed)}), not {value!r} ({kind_of(value)})"
        )
    check_keys(value, allowed, f"[{key}]")
    return dict(value)


def _projection_entry(item: Any) -> ProjectionEntry:
    if isinstance(item, str) and item.strip():
        return ProjectionEntry(item, item, {})
    if not isinstance(item, dict):
        raise InvalidArgumentError(
            f"projections entry: give a name or a table {{label, name, options}}, not {item!r}"
        )
    check_keys(item, ("label", "name", "options"), "projections entry")
    check_field("projections entry ", "name", item.get("name"), Field("name"))
    name = item["name"]
    check_field(f"projections entry {name!r} ", "label", item.get("label", name), Field("name"))
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise InvalidArgumentError(
            f"projections entry {name!r} options: give a table (options = {{key = value}}), "
            f"not {options!r} ({kind_of(options)})"
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
            f"not {raw!r} ({kind_of(raw)})"
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
    from projbench.recipe import Recipe

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
    from projbench.recipe import Recipe, default_weight_decay

    if not isinstance(raw, dict):
        raise InvalidArgumentError(
            f"pairs[{i}]: give a table ([[pairs]] with architecture and dataset), not {raw!r}"
        )
    check_keys(raw, (*PAIR_KEYS, *SEARCH_KEYS, *RECIPE_KEYS, *RUN_KEYS), f"pairs[{i}]")
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
        raise InvalidArgumentError(f"a study must be a table of keys, not {kind_of(data)}")
    check_keys(data, TOP_KEYS, "study")
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


__all__ = ["resolve"]
