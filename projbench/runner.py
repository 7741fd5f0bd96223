"""Compose suites over projections into one recorded run: CLI -> runner -> suites -> results.

:func:`run_benchmark` checks everything it can before any case runs, so a mistake costs a
one-line error instead of a file of failed cases:

1. names: projections and suites must be registered (repeats are dropped, order kept) and at
   least one suite must be registered at all;
2. options: every ``-o`` option must be taken by some selected projection, and each projection
   is constructed once at a tiny size with the options it accepts, so its own validation
   (e.g. ``q`` in (0, 1]) speaks, with its full message;
3. resume: an existing file is validated in full (see :func:`projbench.results.read_run`) and
   refused when it was recorded with other result-changing settings (:data:`RESULT_SETTINGS`);
4. contracts: each projection that still has cases to measure passes the contract checks of
   :mod:`projbench.testing` once, at a small size, or the run is refused with the check's message.

Every case key covers what changes its result (:func:`projbench.suites.case_identity`): seed,
dtype, device, the options the projection accepts and the plugin that registered it.
Cases already finished (``ok``/``diverged``) are reused; ``failed`` and ``skipped`` run again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.executors import Executor, LocalExecutor
from projbench.manager import DISABLE_ENV, get_registry
from projbench.results import DONE_STATUSES, ResultsFileError, ResultsWriter, Run, _jsonable, read_run
from projbench.suites import RESULT_SETTINGS, Case, RunSettings, case_identity

#: sizes of the pre-flight construction and contract checks (small: well under a second)
CHECK_d, CHECK_D = 7, 50


class ProjectionCheckError(InvalidArgumentError):
    """A projection failed the contract checks that ``projbench run`` applies before measuring."""


@dataclass
class RunResult:
    """What a finished run produced: its file, every record (old and new), counts by status."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped_existing: int = 0
    wall_s: float = 0.0

    def unstable(self) -> int:
        """Cases whose timings are flagged ``unstable`` (spread too wide to trust)."""
        from projbench.metrics.timing import count_unstable

        return count_unstable(self.records)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def unique(names: list[str]) -> list[str]:
    """``names`` without repeats, first occurrence kept (``fastjl,fastjl`` → ``[fastjl]``)."""
    return list(dict.fromkeys(names))


def validate_options(projections: list[str], options: dict[str, Any], dtype: str = "float32") -> None:
    """Every projection name must be registered, every ``-o`` option accepted by at least one
    selected projection, and each projection must accept the values of its options: it is
    constructed once (d=7, D=50, CPU) with them, so its own validation gives the error."""
    from projbench.projection import make_projection

    registry = get_registry("projections")
    classes = {name: registry.get(name) for name in projections}
    for key in options:
        if not any(key in cls.option_names() for cls in classes.values()):
            takes = "; ".join(
                f"{name}: {', '.join(f'{k}={v!r}' for k, v in cls.option_defaults().items()) or 'none'}"
                for name, cls in classes.items()
            )
            raise InvalidArgumentError(
                f"option {key!r} is not taken by projection(s) {', '.join(projections)}. Options: {takes}"
            )
    torch_dtype = RunSettings(dtype=dtype).torch_dtype
    for name, cls in classes.items():
        accepted = {k: v for k, v in options.items() if k in cls.option_names()}
        if not accepted:
            continue
        shown = ", ".join(f"{k}={v!r}" for k, v in accepted.items())
        try:
            make_projection(name, CHECK_d, CHECK_D, seed=0, device="cpu", dtype=torch_dtype, **accepted)
        except ProjbenchError as exc:
            raise InvalidArgumentError(f"projection {name!r} rejects {shown}: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - a plugin's own (non-projbench) validation
            raise InvalidArgumentError(
                f"projection {name!r} rejects {shown}: {type(exc).__name__}: {_one_line(exc)}"
            ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def check_projection_contracts(names: list[str], settings: RunSettings) -> None:
    """Run :func:`projbench.testing.run_all_checks` once per projection (d=7, D=50, float64,
    with the run's options it accepts; also on the run's device when that is not the CPU).
    A failure raises :class:`ProjectionCheckError` with the check's message, one line."""
    from projbench.testing import run_all_checks

    registry = get_registry("projections")
    device = None if settings.device == "cpu" else settings.device
    for name in names:
        try:
            run_all_checks(name, d=CHECK_d, D=CHECK_D, device=device, **settings.projection_options(name))
        except Exception as exc:  # noqa: BLE001 - ContractError, or whatever a broken plugin raises
            what = "" if isinstance(exc, AssertionError | ProjbenchError) else f"{type(exc).__name__}: "
            raise ProjectionCheckError(
                f"projection {name!r} (plugin {registry.owner(name)!r}) fails the contract checks "
                f"of projbench.testing and is not measured: {what}{_one_line(exc)}"
            ) from None


def plan_cases(projections: list[str], suites: list[str], settings: RunSettings) -> list[Case]:
    """Validate names and options and expand the selected suites into cases (repeated names
    are dropped); each case's ``identity`` is filled, so its key covers the run's settings."""
    projections, suites = unique(projections), unique(suites)
    if not projections:
        raise InvalidArgumentError("choose at least one projection with --proj (see `projbench list`)")
    suite_registry = get_registry("suites")
    if not suites:
        blocked = os.environ.get(DISABLE_ENV, "")
        hint = f" ({DISABLE_ENV}={blocked} is set)" if blocked else ""
        if not len(suite_registry):
            raise InvalidArgumentError(
                f"no suites registered{hint}: nothing to run; see `projbench plugins` "
                "(the built-in suites come from the plugin 'suites')"
            )
        raise InvalidArgumentError("choose at least one suite with --suite (see `projbench list suites`)")
    validate_options(projections, settings.options, settings.dtype)  # also rejects unknown names
    cases: list[Case] = []
    for suite_name in suites:
        cases.extend(suite_registry.get(suite_name).cases(list(projections), settings))
    if not cases:
        raise InvalidArgumentError(
            f"suite(s) {', '.join(suites)} produced no cases for {', '.join(projections)}")
    for case in cases:
        case.identity = case_identity(case, settings)
    return cases


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(_jsonable(value), sort_keys=True))


def check_resumable(run: Run, settings: RunSettings) -> None:
    """Refuse to resume ``run`` with settings that change results (one line, naming each)."""
    config = (run.header or {}).get("config") or {}
    old = config.get("settings") if isinstance(config, dict) else None
    if not isinstance(old, dict):
        raise ResultsFileError(f"cannot resume {run.path}: it was not written by `projbench run` "
                               "(its header has no run settings)")
    new = _normalised(asdict(settings))
    diffs = [f"{k}: {old.get(k, '(absent)')!r} in the file, {new.get(k)!r} now"
             for k in RESULT_SETTINGS if _normalised(old.get(k, "(absent)")) != new.get(k)]
    if diffs:
        raise ResultsFileError(
            f"cannot resume {run.path} with other settings ({'; '.join(diffs)}); "
            "use the file's settings, or start a new file with --out"
        )


def default_run_path(out_dir: str | Path) -> Path:
    """A new ``run-YYYYmmdd-HHMMSS.jsonl`` in ``out_dir`` (``-2``, ``-3`` … if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(out_dir) / f"run-{stamp}.jsonl"
    n = 2
    while path.exists():
        path = Path(out_dir) / f"run-{stamp}-{n}.jsonl"
        n += 1
    return path


def run_benchmark(
    projections: list[str],
    suites: list[str],
    settings: RunSettings,
    *,
    path: str | Path,
    executor: Executor | None = None,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = True,
    check_contracts: bool = True,
) -> RunResult:
    """Run ``suites`` × ``projections`` and record to ``path``.

    An existing ``path`` is resumed (``resume=True``) or refused (``resume=False``).
    Everything listed in the module docstring is checked before ``on_start`` is called and
    before the file is touched; ``on_start(n)`` receives the number of cases to measure.
    """
    projections, suites = unique(projections), unique(suites)
    cases = plan_cases(projections, suites, settings)
    path = Path(path)
    executor = executor or LocalExecutor()
    config = {"projections": projections, "suites": suites, "settings": asdict(settings)}
    existing: Run | None = None
    if path.exists():
        if not resume:
            raise ResultsFileError(
                f"{path} exists already; resume it with --resume {path} or choose another path")
        existing = read_run(path, strict=True)
        check_resumable(existing, settings)
    done = {c["key"]: c for c in (existing.cases if existing else []) if c["status"] in DONE_STATUSES}
    todo = [c for c in cases if c.key not in done]
    if check_contracts:
        check_projection_contracts(unique([c.projection for c in todo if c.projection in projections]),
                                   settings)
    start = time.perf_counter()
    result = RunResult(path=path)
    wanted = {c.key for c in cases}
    result.records.extend(r for k, r in done.items() if k in wanted)
    result.skipped_existing = len(result.records)
    with ResultsWriter(path, config=config, resume=True) as writer:
        if on_start is not None:
            on_start(len(todo))
        identities = {c.key: c.identity for c in todo}
        for record in executor.map(todo, settings):
            record.setdefault("identity", identities.get(str(record.get("key")), {}))  # what the key covers
            writer.write_case(record)
            result.records.append(record)
            if on_record is not None:
                on_record(record)
        result.wall_s = time.perf_counter() - start
        writer.close({"cases": len(result.records), "by_status": result.counts(),
                      "wall_s": result.wall_s, "resumed_cases": result.skipped_existing,
                      "unstable_cases": result.unstable()})
    return result
