"""Compose suites over projections into one recorded run: CLI -> runner -> suites -> results.

:func:`run_benchmark` validates names and options up front (so a typo fails before any work),
expands every selected suite into cases, skips cases already recorded when resuming, executes
the rest through an executor, and appends each record to the results file as it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.executors import Executor, LocalExecutor
from projbench.manager import get_registry
from projbench.results import ResultsWriter
from projbench.suites import Case, RunSettings


@dataclass
class RunResult:
    """What a finished run produced: its file, every record (old and new), counts by status."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped_existing: int = 0
    wall_s: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def validate_options(projections: list[str], options: dict[str, Any]) -> None:
    """Every projection name must be registered, and every ``-o`` option accepted by at least
    one selected projection."""
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


def plan_cases(projections: list[str], suites: list[str], settings: RunSettings) -> list[Case]:
    """Validate names and expand the selected suites into cases."""
    if not projections:
        raise InvalidArgumentError("choose at least one projection with --proj (see `projbench list`)")
    validate_options(projections, settings.options)  # also rejects unknown projection names
    suite_registry = get_registry("suites")
    cases: list[Case] = []
    for suite_name in suites:
        cases.extend(suite_registry.get(suite_name).cases(list(projections), settings))
    return cases


def default_run_path(out_dir: str | Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(out_dir) / f"run-{stamp}.jsonl"


def run_benchmark(
    projections: list[str],
    suites: list[str],
    settings: RunSettings,
    *,
    path: str | Path,
    executor: Executor | None = None,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run ``suites`` × ``projections`` and record to ``path`` (resuming if it exists)."""
    cases = plan_cases(projections, suites, settings)
    executor = executor or LocalExecutor()
    config = {"projections": projections, "suites": suites, "settings": asdict(settings)}
    start = time.perf_counter()
    result = RunResult(path=Path(path))
    with ResultsWriter(path, config=config, resume=True) as writer:
        done = writer.completed_keys()
        todo = [c for c in cases if c.key not in done]
        result.skipped_existing = len(cases) - len(todo)
        if result.skipped_existing:
            from projbench.results import read_run

            result.records.extend(c for c in read_run(path).cases if c.get("key") in done)
        if on_start is not None:
            on_start(len(todo))
        for record in executor.map(todo, settings):
            writer.write_case(record)
            result.records.append(record)
            if on_record is not None:
                on_record(record)
        result.wall_s = time.perf_counter() - start
        writer.close({"cases": len(result.records), "by_status": result.counts(),
                      "wall_s": result.wall_s, "resumed_cases": result.skipped_existing})
    return result
