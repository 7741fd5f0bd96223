"""`projbench run` is honest: resume keys cover every result-changing setting, settings cannot be
mixed in one file, projections are contract-checked and options validated before any case runs,
repeated names run once, and bad paths or a missing suite plugin are one-line errors."""

from __future__ import annotations

import types
import warnings
from pathlib import Path

import pytest
import torch

import projbench
from projbench.benchmark import plan_cases
from projbench.cli import cli
from projbench.results import read_run
from projbench.suites import RunSettings


def run_path(result) -> Path:
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


class Gaussian(projbench.Projection):
    """A correct dense Gaussian projection (the DESIGN's third-party example)."""

    name = "gauss3p"

    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32, scale: float = 1.0):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if not scale > 0:
            raise projbench.InvalidArgumentError(f"scale must be > 0, got {scale!r}")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", (torch.randn(D, d, generator=g, dtype=torch.float64) / D**0.5)
                             .to(device=device, dtype=dtype))

    def forward(self, theta):
        return theta @ self.matrix.T

    def adjoint(self, y):
        return y @ self.matrix


class ShortOutput(Gaussian):
    """Returns D - 1 values: an off-by-one projection."""

    name = "short3p"

    def forward(self, theta):
        return (theta @ self.matrix.T)[..., :-1]


class Brittle(Gaussian):
    """Passes the contract checks at small sizes, raises at the sizes a suite measures."""

    name = "brittle3p"

    def adjoint(self, y):
        if self.D > 1000:
            raise RuntimeError("brittle3p cannot handle large D")
        return y @ self.matrix


def plugin_module(*classes) -> types.ModuleType:
    module = types.ModuleType("third_party_test_plugin")

    @projbench.hookimpl
    def projbench_register_projections(registry):
        for cls in classes:
            registry.add(cls)

    module.projbench_register_projections = projbench_register_projections
    return module


# ------------------------------------------------------------------------------------------
# case keys and resume
# ------------------------------------------------------------------------------------------
def keys(projections, **settings) -> dict[str, list[str]]:
    cases = plan_cases(projections, ["distortion"], RunSettings(**settings))
    out: dict[str, list[str]] = {}
    for c in cases:
        out.setdefault(c.projection, []).append(c.key)
    return out


@pytest.mark.parametrize("change", [{"seed": 5}, {"dtype": "float64"}, {"options": {"q": 0.9}},
                                    {"quick": False}])
def test_every_result_changing_setting_changes_the_case_keys(change) -> None:
    base = keys(["fastjl"])["fastjl"]
    changed = keys(["fastjl"], **change)["fastjl"]
    assert not set(base) & set(changed)


def test_device_is_part_of_the_key() -> None:
    cases = plan_cases(["fastjl"], ["distortion"], RunSettings())
    case = cases[0]
    before = case.key
    case.identity = {**case.identity, "device": "cuda:0"}
    assert case.key != before and case.identity["plugin"] == "fastjl"


def test_an_option_of_another_projection_leaves_keys_unchanged() -> None:
    assert keys(["dense", "fastjl"], options={"q": 0.5})["dense"] == keys(["dense"])["dense"]


def test_same_projection_name_from_another_plugin_gets_other_keys(fresh_manager) -> None:
    fresh_manager.register_plugin(plugin_module(Gaussian), name="vendor-a")
    a = keys(["gauss3p"])["gauss3p"]
    fresh_manager.unregister_plugin("vendor-a")
    fresh_manager.register_plugin(plugin_module(Gaussian), name="vendor-b")
    b = keys(["gauss3p"])["gauss3p"]
    assert not set(a) & set(b)


def test_resume_with_other_seed_or_options_is_refused_and_file_untouched(runner, tmp_path) -> None:
    path = run_path(runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                        "--seed", "0", "--out", str(tmp_path)]))
    before = path.read_bytes()
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", "--seed", "5",
                                 "-o", "q=0.9", "--resume", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "seed: 0 in the file, 5 now" in result.output and "'q': 0.9" in result.output
    assert path.read_bytes() == before


def test_skipped_cases_are_measured_again_on_resume(runner, tmp_path) -> None:
    path = run_path(runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                        "--out", str(tmp_path)]))
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if '"type": "case"' in line)
    lines[i] = lines[i].replace('"status": "ok"', '"status": "skipped"')
    path.write_text("\n".join(lines) + "\n")
    skipped_key = read_run(path).cases[0]["key"]
    assert read_run(path).cases[0]["status"] == "skipped"
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", "--resume", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 reused" in result.output
    run = read_run(path)
    assert len(run.cases) == 3 and run.superseded == 1
    assert {c["key"]: c["status"] for c in run.cases}[skipped_key] == "ok"


def test_mistyped_resume_path_is_an_error_not_a_new_file(runner, tmp_path) -> None:
    missing = tmp_path / "typo.jsonl"
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                 "--resume", str(missing)])
    assert result.exit_code == 1 and "no results file" in result.output and "Traceback" not in result.output
    assert not missing.exists()


# ------------------------------------------------------------------------------------------
# checks before any case runs
# ------------------------------------------------------------------------------------------
def test_projection_failing_the_contract_checks_is_refused(runner, tmp_path, fresh_manager) -> None:
    fresh_manager.register_plugin(plugin_module(ShortOutput), name="vendor-short")
    out = tmp_path / "out"
    result = runner.invoke(cli, ["run", "--proj", "short3p", "--suite", "distortion", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "'short3p' (plugin 'vendor-short') fails the contract checks" in result.output
    assert "forward of shape" in result.output
    assert not out.exists()


def test_a_correct_third_party_projection_passes_and_its_option_is_validated(
        runner, tmp_path, fresh_manager) -> None:
    fresh_manager.register_plugin(plugin_module(Gaussian), name="vendor-a")
    bad = runner.invoke(cli, ["run", "--proj", "gauss3p", "-o", "scale=-1", "--suite", "distortion",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "rejects scale=-1: scale must be > 0, got -1" in bad.output
    ok = runner.invoke(cli, ["run", "--proj", "gauss3p", "--suite", "distortion", "--out", str(tmp_path)])
    run = read_run(run_path(ok))
    assert run.cases and all(c["status"] == "ok" for c in run.cases)


def test_case_failures_are_still_recorded_with_exit_status_1(runner, tmp_path, fresh_manager) -> None:
    fresh_manager.register_plugin(plugin_module(Brittle), name="vendor-brittle")
    result = runner.invoke(cli, ["run", "--proj", "brittle3p", "--suite", "distortion",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    run = read_run(next(tmp_path.glob("*.jsonl")))
    assert run.complete and run.cases and all(c["status"] == "failed" for c in run.cases)
    assert "brittle3p cannot handle large D" in run.cases[0]["error"]


def test_repeated_names_run_once(runner, tmp_path) -> None:
    path = run_path(runner.invoke(cli, ["run", "--proj", "fastjl,fastjl", "--proj", "fastjl",
                                        "--suite", "distortion,distortion", "--out", str(tmp_path)]))
    run = read_run(path)
    assert len(run.cases) == len({c["key"] for c in run.cases}) == 3
    assert run.header["config"]["projections"] == ["fastjl"]
    assert run.header["config"]["suites"] == ["distortion"]
    # the Python API drops repeats too
    assert len(plan_cases(["fastjl", "fastjl"], ["distortion", "distortion"], RunSettings())) == 3


def test_no_suites_registered_is_an_error_without_a_file(runner, tmp_path, monkeypatch,
                                                          fresh_manager) -> None:
    monkeypatch.setenv("PROJBENCH_DISABLE_PLUGINS", "suites")
    fresh_manager.reset()
    out = tmp_path / "out"
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--out", str(out)])
    assert result.exit_code == 1 and "no suites registered" in result.output
    assert "PROJBENCH_DISABLE_PLUGINS=suites" in result.output
    assert not out.exists()


@pytest.mark.parametrize("where", ["file_child", "sys", "readonly"])
def test_unwritable_out_is_one_line_error(runner, tmp_path, where) -> None:
    if where == "file_child":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "sub"
    elif where == "sys":
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no /sys here")
        out = Path("/sys/projbench-test")
    else:
        import os

        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "sub"
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot write results file" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------
# side effects
# ------------------------------------------------------------------------------------------
def test_cli_restores_warnings_showwarning(runner) -> None:
    before = warnings.showwarning
    assert runner.invoke(cli, ["list", "suites"]).exit_code == 0
    assert warnings.showwarning is before


def test_warnings_inside_a_command_print_as_one_line(runner, tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"type": "run", "schema": 1, "run_id": "x", "config": {}}\nnot json\n'
                    '{"type": "end", "summary": {}}\n')
    result = runner.invoke(cli, ["report", str(path), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "Warning: " in result.output and "1 bad line(s) skipped (line 2: not valid JSON)" in result.output


def test_list_json_options_are_a_dict_of_default_and_type(runner) -> None:
    import json

    result = runner.invoke(cli, ["list", "projections", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)["projections"]}
    q = rows["fastjl"]["options"]["q"]
    assert set(q) >= {"default", "type"}
    from projbench.manager import get_registry

    cls = get_registry("projections").get("fastjl")
    assert rows["fastjl"]["options"].keys() == set(cls.option_names())
    assert q["default"] == cls.option_defaults()["q"]
    assert isinstance(rows["dense"]["options"], dict) and "max_bytes" in rows["dense"]["options"]
