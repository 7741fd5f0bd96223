"""The progress line of a study while it trains: one update per finished run.

The ETA is the mean wall time per finished run times the runs left of the study's estimated
(upper) run count; searches usually stop earlier, so it is pessimistic.
"""

from __future__ import annotations

import time
from typing import Any


class RunProgress:
    """A rich progress line per finished run, with the count of runs and an ETA from the
    study's estimated run count. On a terminal the line is live (and erased when an error or
    an interrupt ends the block, whose own line says what happened); in a log it is written
    once, when the block completes."""

    def __init__(self, console: Any, estimate: str) -> None:
        from projbench.report.run_files import make_progress

        self.console = console
        self.progress = make_progress(console)
        self.progress.disable = not console.is_terminal
        high = int(estimate.split("-")[-1])
        self.high = high
        self.task = self.progress.add_task("runs", total=high, current=f"~{estimate} runs planned")
        self.start = time.perf_counter()
        self.done = 0

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.progress.live.transient = True
        self.progress.__exit__(*exc)  # type: ignore[arg-type]
        if exc[0] is None and self.progress.disable:
            self.console.print(self.progress.make_tasks_table(self.progress.tasks))

    def __call__(self, record: dict[str, Any], spec: Any) -> None:
        self.done += 1
        stats = record.get("stats") or {}
        acc = stats.get("test_accuracy")
        acc_text = f"acc {acc:.4f}" if isinstance(acc, float) else "acc -"
        status = record.get("status")
        # ETA from the mean time per finished run and the planned (upper) run count: searches
        # usually stop earlier, so this is pessimistic
        elapsed = time.perf_counter() - self.start
        left = max(self.high - self.done, 0) * elapsed / self.done
        self.progress.update(
            self.task,
            advance=1,
            current=f"ETA ≤ {left / 60:.0f} min | {spec.label()}: {acc_text} "
            f"[{status}, {stats.get('run_wall_s', 0):.1f}s]",
        )
