"""A plugin that exits, interrupts, raises or hangs is skipped; a command goes on.

Every plugin here is a real on-disk distribution (module + ``.dist-info`` with an entry point
in the ``projbench`` group) found by ``importlib.metadata`` exactly as an installed third-party
package would be. The command line runs in a real subprocess with that folder on its path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import projbench
from projbench import manager

CLI = "import sys; sys.argv[0] = 'projbench'; from projbench.cli import main; main()"

EXIT_AT_IMPORT = "import sys\nsys.exit(3)\n"

INTERRUPT_IN_HOOK = '''
import projbench

class Never(projbench.Projection):
    name = "never-registered"
    def forward(self, theta):
        return theta
    def adjoint(self, y):
        return y

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Never)
    raise KeyboardInterrupt
'''

RAISING_COMMANDS = '''
import click
import projbench

@click.command("half-added")
def half_added():
    """Never reachable: its hook fails after adding it."""

@projbench.hookimpl
def projbench_register_commands(cli):
    cli.add_command(half_added)
    raise RuntimeError("commands are broken")
'''

HANG_AT_IMPORT = "import time\ntime.sleep(600)\n"

HANG_IN_COMMANDS = '''
import time
import projbench

@projbench.hookimpl
def projbench_register_commands(cli):
    time.sleep(600)
'''

TAKES_A_CORE_COMMAND = '''
import click
import projbench

@click.command("list")
def impostor_list():
    """Not projbench's list."""
    click.echo("impostor")

@projbench.hookimpl
def projbench_register_commands(cli):
    cli.add_command(impostor_list)
'''

IMPOSTOR_FASTJL = '''
import torch, projbench

class ImpostorFastJL(projbench.Projection):
    """Identity padded with zeros, registered under a built-in's name."""
    name = "fastjl"
    def forward(self, theta):
        return torch.nn.functional.pad(theta, (0, self.D - self.d))
    def adjoint(self, y):
        return y[..., : self.d]

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(ImpostorFastJL)
'''

UNKNOWN_HOOK = '''
import projbench

@projbench.hookimpl
def projbench_register_widgets(registry):
    pass
'''


def run_cli(root: Path, *args: str, timeout_env: str | None = None,
            limit_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``projbench ARGS`` in a fresh interpreter that sees the distributions in ``root``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROJBENCH_PREFER", "PROJBENCH_DISABLE_PLUGINS", "PROJBENCH_PLUGIN_TIMEOUT")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    if timeout_env is not None:
        env["PROJBENCH_PLUGIN_TIMEOUT"] = timeout_env
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          env=env, timeout=limit_s)


def warning_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("Warning: ")]


def assert_help_lists_the_core_commands(proc: subprocess.CompletedProcess[str]) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    for command in ("run", "list", "plugins", "study", "intrinsic-dim"):
        assert f"  {command} " in proc.stdout, out


# ------------------------------------------------------------------------------------------
# plugin code that raises BaseException
# ------------------------------------------------------------------------------------------
def test_plugin_calling_sys_exit_at_import_is_skipped_and_help_still_works(
    tmp_path, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "exiter", "exiter_plugin", EXIT_AT_IMPORT, "exiter")
    proc = run_cli(tmp_path, "--help")
    assert_help_lists_the_core_commands(proc)
    (line,) = warning_lines(proc)
    assert "'exiter'" in line and "failed to load and is skipped: SystemExit: 3" in line


def test_plugin_calling_sys_exit_at_import_is_reported_by_plugins(
    plugin_dir, install_fake_distribution
) -> None:
    install_fake_distribution(plugin_dir, "exiter", "exiter_plugin", EXIT_AT_IMPORT, "exiter")
    with pytest.warns(manager.PluginLoadWarning, match="'exiter'.*SystemExit: 3"):
        names = projbench.list_plugins("projections")
    assert {"dense", "fastjl"} <= set(names)
    info = {i.name: i for i in manager.plugin_infos()}["exiter"]
    assert info.error == "SystemExit: 3" and not info.builtin


def test_keyboard_interrupt_raised_in_a_registration_hook_skips_only_that_plugin(
    tmp_path, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "interrupter", "interrupter_plugin", INTERRUPT_IN_HOOK,
                              "interrupter")
    proc = run_cli(tmp_path, "list", "projections", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'dense'" not in proc.stdout and '"dense"' in proc.stdout
    assert "never-registered" not in proc.stdout  # nothing of the failed hook is kept
    (line,) = warning_lines(proc)
    assert "'interrupter' failed while registering projections" in line
    assert line.endswith("KeyboardInterrupt")


def test_raising_register_commands_leaves_help_and_plugin_commands_working(
    tmp_path, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "badcmds", "badcmds_plugin", RAISING_COMMANDS, "badcmds")
    proc = run_cli(tmp_path, "--help")
    assert_help_lists_the_core_commands(proc)
    assert "half-added" not in proc.stdout
    (line,) = warning_lines(proc)
    assert "'badcmds' failed while adding commands" in line
    assert "RuntimeError: commands are broken" in line
    proc = run_cli(tmp_path, "study", "--help")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "Usage: projbench study" in proc.stdout


def test_plugin_with_an_unknown_hook_is_skipped_not_fatal(plugin_dir, install_fake_distribution) -> None:
    install_fake_distribution(plugin_dir, "typo", "typo_plugin", UNKNOWN_HOOK, "typo")
    with pytest.warns(manager.PluginLoadWarning, match="'typo' is skipped.*projbench_register_widgets"):
        names = projbench.list_plugins("projections")
    assert "dense" in names
    assert {i.name: i for i in manager.plugin_infos()}["typo"].error


# ------------------------------------------------------------------------------------------
# plugin code that hangs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", [HANG_AT_IMPORT, HANG_IN_COMMANDS], ids=["import", "commands-hook"])
def test_hanging_plugin_is_skipped_after_the_timeout(
    tmp_path, source: str, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "sleeper", "sleeper_plugin", source, "sleeper")
    start = time.monotonic()
    proc = run_cli(tmp_path, "--help", timeout_env="0.5", limit_s=30)
    assert time.monotonic() - start < 20  # the plugin sleeps for ten minutes
    assert_help_lists_the_core_commands(proc)
    (line,) = warning_lines(proc)
    assert "'sleeper'" in line and "no answer within 0.5 s" in line
    assert "PROJBENCH_PLUGIN_TIMEOUT" in line


def test_invalid_timeout_setting_warns_and_uses_the_default(plugin_dir, monkeypatch) -> None:
    monkeypatch.setenv("PROJBENCH_PLUGIN_TIMEOUT", "soon")
    with pytest.warns(manager.PluginLoadWarning, match="PROJBENCH_PLUGIN_TIMEOUT='soon'.*using 20"):
        assert manager.plugin_timeout() == manager.DEFAULT_PLUGIN_TIMEOUT


# ------------------------------------------------------------------------------------------
# third parties cannot take a built-in's name
# ------------------------------------------------------------------------------------------
def test_third_party_fastjl_keeps_the_builtin_and_is_reachable_qualified(
    plugin_dir, install_fake_distribution
) -> None:
    install_fake_distribution(plugin_dir, "myplugin", "impostor_plugin", IMPOSTOR_FASTJL, "myplugin")
    expected = "'myplugin' registers projection 'fastjl', a built-in name.*'myplugin:fastjl'"
    with pytest.warns(manager.PluginLoadWarning, match=expected):
        names = projbench.list_plugins("projections")
    assert "fastjl" in names and "myplugin:fastjl" in names and "fastjl:fastjl" not in names
    assert type(projbench.make_projection("fastjl", d=3, D=16)).__module__ == "projbench.builtin.fastjl"
    theirs = projbench.make_projection("myplugin:fastjl", d=3, D=16)
    assert type(theirs).__name__ == "ImpostorFastJL"
    (conflict,) = [c for c in manager.conflicts() if c.kind == "projections"]
    assert conflict.chosen == "fastjl" and "'myplugin:fastjl'" in conflict.message
    info = {i.name: i for i in manager.plugin_infos()}["myplugin"]
    assert info.registers == {"projections": ["myplugin:fastjl"]}


def test_third_party_entry_point_named_like_a_builtin_does_not_replace_it(
    plugin_dir, install_fake_distribution
) -> None:
    install_fake_distribution(plugin_dir, "myplugin", "impostor_plugin", IMPOSTOR_FASTJL, "fastjl")
    with pytest.warns(manager.PluginLoadWarning) as record:
        names = projbench.list_plugins("projections")
    messages = [str(w.message) for w in record]
    assert any("'fastjl' (impostor_plugin, from myplugin) has the name of a built-in plugin: it is "
               "loaded as plugin 'myplugin'" in m for m in messages), messages
    assert "fastjl" in names and "myplugin:fastjl" in names
    assert type(projbench.make_projection("fastjl", d=3, D=16)).__module__ == "projbench.builtin.fastjl"
    infos = {i.name: i for i in manager.plugin_infos()}
    assert infos["fastjl"].builtin and not infos["myplugin"].builtin


def test_two_third_parties_sharing_a_name_stay_ambiguous(plugin_dir, install_fake_distribution) -> None:
    source = IMPOSTOR_FASTJL.replace('name = "fastjl"', 'name = "shared"')
    install_fake_distribution(plugin_dir, "first", "first_plugin", source, "first")
    install_fake_distribution(plugin_dir, "second", "second_plugin", source, "second")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = projbench.list_plugins("projections")
    assert "first:shared" in names and "second:shared" in names and "shared" not in names
    with pytest.raises(projbench.DuplicateNameError, match="PROJBENCH_PREFER=shared="):
        projbench.make_projection("shared", d=3, D=16)


def test_cli_lists_the_third_party_fastjl_qualified(tmp_path, install_fake_distribution) -> None:
    install_fake_distribution(tmp_path, "myplugin", "impostor_plugin", IMPOSTOR_FASTJL, "myplugin")
    proc = run_cli(tmp_path, "plugins", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert '"myplugin:fastjl"' in proc.stdout
    (line,) = warning_lines(proc)
    assert "'fastjl' stays the built-in one" in line


def test_plugin_command_named_like_a_core_command_is_added_qualified(
    tmp_path, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "cmdimpostor", "cmdimpostor_plugin", TAKES_A_CORE_COMMAND,
                              "cmdimpostor")
    proc = run_cli(tmp_path, "--help")
    assert_help_lists_the_core_commands(proc)
    assert "  cmdimpostor:list " in proc.stdout
    (line,) = warning_lines(proc)
    assert "'cmdimpostor' adds command 'list', which is taken" in line
    proc = run_cli(tmp_path, "cmdimpostor:list")
    assert proc.returncode == 0 and proc.stdout.strip() == "impostor", proc.stderr
