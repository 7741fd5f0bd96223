"""A full disk while a command writes: one line, a non-zero exit, nothing half-written, and the
same work continues once space is freed.

Every test runs the real command line on a real, small tmpfs (mounted here; root only) that
is filled up to a few pages before the command starts, so the write fails partway: a study
file, a run file, the figures of a study and of a run file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from projbench.errors import InvalidArgumentError
from projbench.results import ResultsFileError, ResultsWriter, read_run
from projbench.study.store import StudyStore, read_study

#: the unit tmpfs hands out space in
PAGE = 4096

STUDY_TOML = """\
seeds = [0]
projections = ["fastfood"]
[search]
method = "grid"
grid = [16]
[recipe]
lr = 2e-2
epochs = 30
max_steps = 40
batch_size = 64
[[pairs]]
architecture = "mlp"
dataset = "digits"
"""

RUN_ARGS = ("run", "--proj", "fastjl", "--suite", "distortion")


@contextmanager
def small_tmpfs(where: Path, size_kib: int) -> Iterator[Path]:
    """A fresh tmpfs of ``size_kib`` KiB mounted at ``where``, unmounted afterwards; skips the
    test when this process may not mount one."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and the mount command")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill_leaving(disk: Path, room: int) -> Path:
    """A file on ``disk`` that leaves only ``room`` bytes free; delete it to free the space."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    assert free > room, f"the tmpfs is too small: {free} bytes free, {room} wanted free"
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (free - room))
    stat = os.statvfs(disk)
    assert stat.f_bavail * stat.f_frsize == room
    return filler


def projbench(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``projbench`` command line in a child process."""
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "projbench", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


def assert_one_line_no_space(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line saying no space is left, as its last line, and
    no traceback; returns that line."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr and "During handling" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "No space left on device" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0] == lines[-1] and errors[0].startswith("Error: cannot write "), proc.stderr
    assert "free space" in errors[0], errors[0]
    return errors[0]


def assert_whole_lines(path: Path) -> list[dict[str, object]]:
    """``path`` holds only complete JSON lines (no torn last line); returns them."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), f"torn last line in {path}: {raw[-80:]!r}"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def assert_only_whole_pngs(folder: Path) -> list[Path]:
    """``folder`` holds complete PNG files and nothing else (no temporary or half file)."""
    files = sorted(folder.iterdir()) if folder.exists() else []
    for file in files:
        assert file.suffix == ".png", f"left behind: {file.name}"
        data = file.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), f"half PNG {file}"
    return files


@pytest.fixture(scope="module")
def study_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-run digits study (seconds)."""
    path = tmp_path_factory.mktemp("spec") / "digits.toml"
    path.write_text(STUDY_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory, study_spec: Path) -> Path:
    """The ``study.jsonl`` of the finished digits study, written on an ordinary disk."""
    out = tmp_path_factory.mktemp("study") / "s"
    done = projbench("study", study_spec, "--out", out, "--no-figures", cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out / "study.jsonl"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run file of the distortion suite, written on an ordinary disk."""
    out = tmp_path_factory.mktemp("run")
    done = projbench(*RUN_ARGS, "--out", out, cwd=out)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def test_study_on_a_full_disk_stops_with_one_line_and_resumes_once_space_is_freed(
    tmp_path: Path, study_spec: Path
) -> None:
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        out = disk / "s"
        # a page for the lock file, one for study.jsonl: its header and first run fit, the second does not
        filler = fill_leaving(disk, 2 * PAGE)
        full = projbench("study", study_spec, "--out", out, cwd=tmp_path)
        line = assert_one_line_no_space(full)
        assert str(out / "study.jsonl") in line and "run the same command again" in line
        records = assert_whole_lines(out / "study.jsonl")
        assert records[0]["type"] == "study"
        kept = [r for r in records if r["type"] == "run"]
        assert len(kept) == 1 and not any(r["type"] == "end" for r in records)
        assert not (out / "figures").exists()

        filler.unlink()
        again = projbench("study", study_spec, "--out", out, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert re.search(r"\b1 runs trained, 1 reused, 0 failed", again.stderr), again.stderr
        study = read_study(out)
        assert study.ended and study.resumes == 1 and not study.torn and study.bad_lines == 0
        assert len(study.runs) == 2 and kept[0]["run_id"] in study.runs
        assert len(assert_only_whole_pngs(out / "figures")) == 3


def test_study_whose_header_does_not_fit_leaves_no_file_and_starts_once_space_is_freed(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", 64) as disk:
        out = disk / "s"
        out.mkdir()
        filler = fill_leaving(disk, 0)
        spec = {"name": "x", "seeds": [0]}
        refused = r"cannot write study file .*No space left on device; free space"
        with pytest.raises(InvalidArgumentError, match=refused):
            StudyStore(out, spec, {"machine": "here"})
        assert not (out / "study.jsonl").exists()

        filler.unlink()
        store = StudyStore(out, spec, {"machine": "here"})
        store.append_run({"run_id": "r1", "identity": {}, "status": "ok", "stats": {}, "samples": {}})
        store.close({"done": True})
        study = read_study(out)
        assert study.ended and list(study.runs) == ["r1"] and study.resumes == 0


def test_run_on_a_full_disk_stops_with_one_line_and_resumes_once_space_is_freed(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        out = disk / "r"
        # a page for the lock file, four for the run file: its header and two cases fit, not three
        filler = fill_leaving(disk, 5 * PAGE)
        full = projbench(*RUN_ARGS, "--out", out, cwd=tmp_path)
        line = assert_one_line_no_space(full)
        (path,) = out.glob("*.jsonl")
        assert f"--resume {path}" in line
        records = assert_whole_lines(path)
        assert [r["type"] for r in records] == ["run", "case", "case"]

        filler.unlink()
        again = projbench(*RUN_ARGS, "--resume", path, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "(2 reused from the earlier run)" in again.stderr, again.stderr
        run = read_run(path)
        assert run.complete and not run.interrupted and len(run.cases) == 3
        assert not run.torn and run.bad_lines == 0 and len(run.resumes) == 1


@pytest.mark.slow
def test_run_whose_header_does_not_fit_leaves_no_run_file_and_the_same_command_then_completes(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", 256) as disk:
        out = disk / "r"
        filler = fill_leaving(disk, PAGE)  # the lock file's page: the header does not fit
        full = projbench(*RUN_ARGS, "--out", out, cwd=tmp_path)
        line = assert_one_line_no_space(full)
        assert "run the same command again" in line
        assert list(out.glob("*.jsonl")) == []

        filler.unlink()
        again = projbench(*RUN_ARGS, "--out", out, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        (path,) = out.glob("*.jsonl")
        assert read_run(path).complete and len(read_run(path).cases) == 3


def test_results_writer_cuts_a_refused_case_line_back_and_writes_no_end_line(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", 64) as disk:
        path = disk / "run.jsonl"
        writer = ResultsWriter(path, config={})
        filler = fill_leaving(disk, 0)  # the rest of the header's page, nothing more
        case = {"key": "a", "suite": "distortion", "status": "ok", "stats": {"x": "y" * 6000}}
        with pytest.raises(ResultsFileError, match=r"No space left on device; free space .* --resume"):
            with writer:
                writer.write_case(case)
        records = assert_whole_lines(path)
        assert [r["type"] for r in records] == ["run"]

        filler.unlink()
        with ResultsWriter(path, config={}, resume=True) as resumed:
            resumed.write_case(case)
        run = read_run(path)
        assert run.complete and [c["key"] for c in run.cases] == ["a"] and not run.torn


@pytest.mark.slow
def test_report_of_a_study_on_a_full_disk_leaves_no_half_figure_and_completes_once_space_is_freed(
    tmp_path: Path, finished_study: Path
) -> None:
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        (disk / "s").mkdir()
        shutil.copy(finished_study, disk / "s" / "study.jsonl")
        figs = disk / "figs"
        filler = fill_leaving(disk, 10 * PAGE)  # the first figure fits, the second does not
        full = projbench("report", disk / "s", "--figures", figs, cwd=tmp_path)
        line = assert_one_line_no_space(full)
        assert f"figure {figs}" in line
        assert len(assert_only_whole_pngs(figs)) == 1

        filler.unlink()
        again = projbench("report", disk / "s", "--figures", figs, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert len(assert_only_whole_pngs(figs)) == 3


def test_report_of_a_run_file_on_a_full_disk_leaves_no_half_figure_and_completes_once_space_is_freed(
    tmp_path: Path, finished_run: Path
) -> None:
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        copy = disk / "r.jsonl"
        shutil.copy(finished_run, copy)
        figs = disk / "figs"
        filler = fill_leaving(disk, 16 * PAGE)  # less than the distortion figure needs
        full = projbench("report", copy, "--figures", figs, cwd=tmp_path)
        line = assert_one_line_no_space(full)
        assert str(figs / "distortion.png") in line
        assert assert_only_whole_pngs(figs) == []

        filler.unlink()
        again = projbench("report", copy, "--figures", figs, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert [p.name for p in assert_only_whole_pngs(figs)] == ["distortion.png"]


def test_any_command_whose_write_a_full_disk_refuses_ends_with_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from projbench.cli import ProjbenchGroup

    with small_tmpfs(tmp_path / "disk", 64) as disk:
        group = ProjbenchGroup(name="projbench")

        @group.command("fill")
        def fill() -> None:
            """Write more than the disk holds, with no handling of its own."""
            with open(disk / "big", "wb") as fh:
                fh.write(b"\0" * 128 * 1024)

        result = CliRunner().invoke(group, ["fill"])
        assert result.exit_code == 1 and result.exception is not None
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [
            "Error: cannot write a file: No space left on device; free space on its device, "
            "then run the same command again"
        ], result.stderr
        assert "Traceback" not in result.output
