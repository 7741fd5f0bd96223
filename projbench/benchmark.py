"""Compose suites over projections into one recorded run: CLI -> runner -> suites -> results.

:func:`run_benchmark` checks everything it can before any case runs, so a mistake costs a
one-line error instead of a file of failed cases:

1. names and numbers: projections and suites must be registered (repeats are dropped, order
   kept), at least one suite must be registered at all, the seed must lie in
   :data:`projbench.projection.SEED_RANGE` and ``threads`` must be >= 1;
2. options: every ``-o`` option must be taken by some selected projection, and each projection
   is constructed once at a tiny size with the options it accepts, so its own validation
   (e.g. ``q`` in (0, 1]) speaks, with its full message;
3. resume: an existing file is validated in full (see :func:`projbench.results.read_run`) and
   refused when it was recorded with other result-changing settings (:data:`RESULT_SETTINGS`);
4. contracts: each projection that still has cases to measure passes the contract checks of
   :mod:`projbench.testing` once, at a small size, or the run is refused with the check's message;
   a third-party projection is checked in a child process with a deadline
   (:func:`check_projection_contracts`), so one that hangs or crashes is refused in one line too.

Every case key covers what changes its result (:func:`projbench.suites.case_identity`): seed,
dtype, device, the options the projection accepts and the plugin that registered it.
Cases already finished (``ok``/``diverged``) are reused; ``failed`` and ``skipped`` run again.

While it writes, a run holds an exclusive lock on its file (:class:`projbench.locking.FileLock`,
a ``.lock`` file beside it): a second ``run --resume`` of the same file is refused with one line
naming the holder. Each record is written the moment its case finishes. An interrupt
(``KeyboardInterrupt``: Ctrl-C, or :class:`RunInterrupted` raised by the command line's
SIGTERM handler) stops the workers, keeps every finished case and leaves the file without an
``end`` line, so ``report`` calls it interrupted and ``run --resume`` continues it.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from projbench.case_executor import Executor, LocalExecutor
from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.jsonl import restore_nonfinite, to_json
from projbench.locking import FileLock, LockedError
from projbench.manager import DISABLE_ENV, get_registry
from projbench.results import DONE_STATUSES, ResultsFileError, ResultsWriter, Run, read_run
from projbench.suites import RESULT_SETTINGS, Case, RunSettings, case_identity

#: sizes of the pre-flight construction and contract checks (small: well under a second)
CHECK_d, CHECK_D = 7, 50


class ProjectionCheckError(InvalidArgumentError):
    """A projection failed the contract checks that ``projbench run`` applies before measuring."""


class RunInterrupted(KeyboardInterrupt):
    """The run was asked to stop by signal ``signum`` (raised by the command line's handler;
    a ``KeyboardInterrupt``, so nothing that catches ``Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class RunResult:
    """What a finished run produced: its file, every record (old and new), counts by status."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped_existing: int = 0
    wall_s: float = 0.0

    def unstable(self) -> int:
        """Cases whose timings are flagged ``unstable`` (spread too wide, or a loaded machine)."""
        from projbench.metrics.timing import count_unstable

        return count_unstable(self.records)

    def loaded(self) -> int:
        """Cases timed while the machine was loaded (load per CPU above the limit)."""
        from projbench.metrics.timing import count_loaded

        return count_loaded(self.records)

    def max_load_per_cpu(self) -> float | None:
        """The highest 1-minute load per CPU recorded beside a timed case (None: none recorded)."""
        loads = [r["stats"]["load_per_cpu"] for r in self.records
                 if isinstance(r.get("stats"), dict)
                 and isinstance(r["stats"].get("load_per_cpu"), int | float)]
        return max(loads) if loads else None

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


#: seconds a third-party projection's contract checks may take (their child process is killed
#: then), unless :data:`CONTRACT_TIMEOUT_ENV` says otherwise
DEFAULT_CONTRACT_TIMEOUT_S = 60.0
CONTRACT_TIMEOUT_ENV = "PROJBENCH_CONTRACT_TIMEOUT"


def contract_timeout() -> float:
    """``$PROJBENCH_CONTRACT_TIMEOUT`` seconds, else :data:`DEFAULT_CONTRACT_TIMEOUT_S`; a value
    that is not a positive number is a one-line error."""
    import math

    raw = os.environ.get(CONTRACT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_CONTRACT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(
            f"{CONTRACT_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def contract_failure(name: str, device: str | None, options: dict[str, Any],
                     reload_plugins: bool = False) -> str | None:
    """Run :func:`projbench.testing.run_all_checks` on projection ``name`` (d=7, D=50, float64,
    also on ``device``); None when it passes, else the failure in one line. ``reload_plugins``:
    build the plugin registries anew first (in a child process whose registries were built
    with another environment)."""
    from projbench.testing import run_all_checks

    with warnings.catch_warnings():
        if reload_plugins:  # the caller has shown the plugins' warnings already
            from projbench import manager

            warnings.simplefilter("ignore")
            manager.reset()
        try:
            run_all_checks(name, d=CHECK_d, D=CHECK_D, device=device, **options)
        except Exception as exc:  # noqa: BLE001 - ContractError, or whatever a broken plugin raises
            what = "" if isinstance(exc, AssertionError | ProjbenchError) else f"{type(exc).__name__}: "
            return f"{what}{_one_line(exc)}"
    return None


def _registered_at_runtime(plugin: str) -> bool:
    """Whether ``plugin`` was registered by Python code in this process rather than installed."""
    from projbench.manager import plugin_infos

    return any(info.name == plugin and info.version == "runtime" for info in plugin_infos())


def check_projection_contracts(names: list[str], settings: RunSettings, *,
                               isolate: bool | None = None) -> None:
    """Run :func:`projbench.testing.run_all_checks` once per projection (d=7, D=50, float64,
    with the run's options it accepts; also on the run's device when that is not the CPU).
    A failure raises :class:`ProjectionCheckError` with the check's message, one line.

    The checks of a third-party projection (one an installed plugin, not a built-in, registers)
    run in a child process (:func:`projbench.executors.call_in_child`) that is killed after
    :func:`contract_timeout` seconds: a projection whose code hangs, or crashes its process, is
    refused in one line instead of taking the command with it. Built-ins run here, and so do
    plugins registered by Python code in this process (``manager.register_plugin``: the caller's
    own code, which a child would not have). ``isolate``: True or False forces either way."""
    from projbench.executors import ChildFailure, call_in_child, describe_exit

    registry = get_registry("projections")
    device = None if settings.device == "cpu" else settings.device
    for name in names:
        owner = registry.owner(name)
        options = settings.projection_options(name)
        alone = isolate if isolate is not None else (
            owner not in registry.builtin_plugins and not _registered_at_runtime(owner))
        refused = f"projection {name!r} (plugin {owner!r})"
        if not alone:
            failure = contract_failure(name, device, options)
        else:
            timeout = contract_timeout()
            try:
                failure = call_in_child(contract_failure, name, device, options, True, timeout=timeout)
            except ChildFailure as exc:
                if exc.timed_out:
                    raise ProjectionCheckError(
                        f"{refused} did not finish the contract checks of projbench.testing within "
                        f"{timeout:g} s (its code hangs?) and is not measured; fix or remove the plugin, "
                        f"or set {CONTRACT_TIMEOUT_ENV} to wait longer") from None
                if exc.exit_code is not None or exc.error is None:
                    raise ProjectionCheckError(
                        f"{refused} crashed the process running the contract checks of projbench.testing "
                        f"(it {describe_exit(exc.exit_code)}: a crash in native code, an abort or an "
                        "out-of-memory kill) and is not measured; fix or remove the plugin") from None
                failure = exc.error
        if failure is not None:
            raise ProjectionCheckError(
                f"{refused} fails the contract checks of projbench.testing and is not measured: {failure}"
            )


def check_run_seed(seed: object) -> int:
    """``seed`` as an int within :data:`projbench.projection.SEED_RANGE` (what every projection
    and generator accepts), else one line that gives the range."""
    from projbench.projection import SEED_RANGE

    lo, hi = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int) or not lo <= seed <= hi:
        raise InvalidArgumentError(f"--seed must be an integer in [-2**63, 2**63 - 1], got {seed!r}")
    return seed


def check_threads(threads: object) -> int | None:
    """``threads`` (torch threads for the cases) as an int >= 1, or None (torch's default)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"--threads must be an integer >= 1, got {threads!r}")
    return threads


def timing_suites(suites: list[str]) -> list[str]:
    """Those of ``suites`` whose numbers are times (run one case at a time)."""
    from projbench.metrics.timing import is_timing_suite

    return [name for name in suites if is_timing_suite(name)]


def plan_cases(projections: list[str], suites: list[str], settings: RunSettings) -> list[Case]:
    """Validate names, seed and options and expand the selected suites into cases (repeated
    names are dropped); each case's ``identity`` is filled, so its key covers the run's settings."""
    check_run_seed(settings.seed)
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
    """``value`` as a file holds it, non-finite floats in one spelling whichever the file used."""
    return json.loads(json.dumps(to_json(restore_nonfinite(value, bare_strings=True)), sort_keys=True))


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


def lock_run_file(path: Path) -> FileLock:
    """Hold ``path`` exclusively (creating its folder); one line when it cannot be locked:
    :class:`LockedError` naming the holder, or why the folder cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path, what=f"run file {path}").acquire()
    except LockedError:
        raise
    except (OSError, InvalidArgumentError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
        raise ResultsFileError(f"cannot write results file {path}: {reason}") from None


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
    threads: int | None = None,
) -> RunResult:
    """Run ``suites`` × ``projections`` and record to ``path``, each case as it finishes.

    An existing ``path`` is resumed (``resume=True``) or refused (``resume=False``).
    Everything listed in the module docstring is checked before ``on_start`` is called and
    before the file is touched; ``on_start(n)`` receives the number of cases to measure.
    ``threads``: torch threads for the cases (None: torch's default), recorded in the header.
    An interrupt leaves the file without an ``end`` line and propagates.
    """
    from projbench.metrics.timing import max_load_per_cpu

    projections, suites = unique(projections), unique(suites)
    threads = check_threads(threads)
    max_load_per_cpu()  # a bad PROJBENCH_MAX_LOAD_PER_CPU is one line now, not a failed case
    cases = plan_cases(projections, suites, settings)
    path = Path(path)
    executor = executor or LocalExecutor()
    describe = getattr(executor, "describe", None)
    config = {"projections": projections, "suites": suites, "settings": asdict(settings),
              "threads": threads, "executor": describe() if describe is not None else None}
    with ExitStack() as held:
        existing: Run | None = None
        if path.exists():
            if not resume:
                raise ResultsFileError(
                    f"{path} exists already; resume it with --resume {path} or choose another path")
            held.callback(lock_run_file(path).release)  # before reading: no other writer now
            existing = read_run(path, strict=True)
            check_resumable(existing, settings)
        done = {c["key"]: c for c in (existing.cases if existing else []) if c["status"] in DONE_STATUSES}
        todo = [c for c in cases if c.key not in done]
        if check_contracts:
            check_projection_contracts(unique([c.projection for c in todo if c.projection in projections]),
                                       settings)
        if existing is None:  # a new file: nothing is created until every check has passed
            held.callback(lock_run_file(path).release)
        result = RunResult(path=path)
        wanted = {c.key for c in cases}
        result.records.extend(r for k, r in done.items() if k in wanted)
        result.skipped_existing = len(result.records)
        _record_cases(path, config, todo, settings, executor, result, resume=existing is not None,
                      threads=threads, on_start=on_start, on_record=on_record)
    return result


def _record_cases(path: Path, config: dict[str, Any], todo: list[Case], settings: RunSettings,
                  executor: Executor, result: RunResult, *, resume: bool, threads: int | None,
                  on_start: Callable[[int], None] | None,
                  on_record: Callable[[dict[str, Any]], None] | None) -> None:
    """Run ``todo`` on ``executor`` and append each record to ``path`` the moment it arrives;
    the ``end`` line (with the summary) only when every case has finished."""
    start = time.perf_counter()
    with ResultsWriter(path, config=config, resume=resume) as writer:
        if on_start is not None:
            on_start(len(todo))
        identities = {c.key: c.identity for c in todo}
        records = executor.map(todo, settings, threads=threads)
        try:
            for record in records:
                record.setdefault("identity", identities.get(str(record.get("key")), {}))
                writer.write_case(record)
                result.records.append(record)
                if on_record is not None:
                    on_record(record)
        finally:  # an interrupt: stop the executor's workers now, not when garbage is collected
            close = getattr(records, "close", None)
            if close is not None:
                close()
        result.wall_s = time.perf_counter() - start
        writer.close({"cases": len(result.records), "by_status": result.counts(),
                      "wall_s": result.wall_s, "resumed_cases": result.skipped_existing,
                      "unstable_cases": result.unstable(), "loaded_cases": result.loaded(),
                      "max_load_per_cpu": result.max_load_per_cpu()})
