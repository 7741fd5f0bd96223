"""Studies: a whole d_int90 table from one command.

:mod:`~projbench.study.spec_resolve` (TOML → the resolved :mod:`~projbench.study.spec`),
:mod:`~projbench.study.engine` (runs on a task pool, searches), :mod:`~projbench.study.store`
(the resumable study folder),
:mod:`~projbench.report.study` and :mod:`~projbench.report.study_extra_tables` (tables),
:mod:`~projbench.report.study_figures` (figures) and :func:`run_study` tying them together.
"""

from __future__ import annotations

from projbench.study.driver import StudyOutcome, run_study
from projbench.study.spec import StudySpec
from projbench.study.spec_files import load_spec, preset_names

__all__ = ["StudyOutcome", "StudySpec", "load_spec", "preset_names", "run_study"]
