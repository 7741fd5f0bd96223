"""What every key of a study spec may hold: the key names of each table, the defaults a pair
starts from, and the typed rule (:class:`Field`) of every value with its bounds.

:func:`check_field` refuses a value its rule does not accept with one line naming the key, what
to give and what was given; :func:`projbench.study.spec_resolve.resolve` runs these checks on a
study file before anything is resolved or run, and :mod:`projbench.transfer` on a θ₀ table's
recipe and run keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, cast

from projbench.errors import InvalidArgumentError
from projbench.search import SEARCH_METHODS

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


def kind_of(value: Any) -> str:
    """``a string``, ``an integer``, ... for a message."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def check_field(where: str, key: str, value: Any, rule: Field) -> None:
    """Refuse ``value`` unless ``rule`` accepts it: one line naming where, what to give and
    what was given."""
    if not rule.accepts(value):
        raise InvalidArgumentError(
            f"{where}{key}: give {rule.describe()}, not {value!r} ({kind_of(value)})"
        )


def check_fields(where: str, table: dict[str, Any], rules: dict[str, Field]) -> None:
    """:func:`check_field` for every key of ``table`` that ``rules`` knows."""
    for key, value in table.items():
        if key in rules:
            check_field(where, key, value, rules[key])


def check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Refuse a table with a key outside ``allowed``: one line naming the unknown and the allowed
    keys."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


__all__ = [
    "ACCURACY_CHOICES",
    "AXIS_FIELDS",
    "AXIS_KEYS",
    "DEFAULT_RUN",
    "DEFAULT_SEARCH",
    "MAX_BURN_IN",
    "MAX_CONDITION_COLUMNS",
    "MAX_SEEDS",
    "MAX_THREADS",
    "NON_RECIPE_AXES",
    "OVERRIDE_FIELDS",
    "PAIR_KEYS",
    "RECIPE_KEYS",
    "RUN_FIELDS",
    "RUN_KEYS",
    "SCALINGS",
    "SEARCH_FIELDS",
    "SEARCH_KEYS",
    "SEED_BOUNDS",
    "TOP_KEYS",
    "Field",
    "check_field",
    "check_fields",
    "check_keys",
    "kind_of",
]
