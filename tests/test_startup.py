"""Start-up cost: ``import projbench``, ``projbench --help`` and usage errors never import torch.

Each check runs in a fresh interpreter in which ``import torch`` fails (``sys.modules['torch'] =
None``): any path that still reaches torch fails loudly there, whatever the machine's speed. No
wall-clock assertion — how long start-up takes is a measurement, not a test.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import projbench

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


def _run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code, *args],
                          capture_output=True, text=True, timeout=120)


def test_import_projbench_does_not_import_torch() -> None:
    proc = _run_without_torch(
        "import projbench, projbench.cli, projbench.manager\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "print(projbench.__version__, projbench.InvalidArgumentError.__name__, projbench.hookimpl)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "InvalidArgumentError" in proc.stdout


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["run", "--help"], ["report", "--help"], ["compare", "--help"],
    ["study", "--help"], ["intrinsic-dim", "--help"], ["no-such-command"], ["run", "--no-such-flag"],
])
def test_help_version_and_usage_errors_without_torch(argv: list[str]) -> None:
    """Loading every installed plugin to list its commands must not import torch either: the
    built-in plugin modules (and the example third-party plugin) import it inside their hooks."""
    proc = _run_without_torch("from projbench.cli import main\nsys.argv[0] = 'projbench'\nmain()", *argv)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert "import of torch halted" not in out, out  # no plugin skipped for needing torch
    assert "Warning" not in out, out
    usage_error = argv[0] == "no-such-command" or "--no-such-flag" in argv
    assert proc.returncode == (2 if usage_error else 0), out
    if argv == ["--help"]:
        for command in ("run", "report", "list", "plugins", "study", "intrinsic-dim"):
            assert f"  {command} " in proc.stdout


def test_fwht_stays_the_function_after_every_module_is_imported() -> None:
    """``projbench.fwht`` is the public transform; its implementation module is
    ``projbench.hadamard`` so that importing it cannot rebind the name to a module."""
    import projbench.builtin.plugins
    import projbench.hadamard
    from projbench.manager import get_registry

    get_registry("backends")
    get_registry("projections")
    assert isinstance(projbench.fwht, types.FunctionType)
    assert projbench.fwht is projbench.hadamard.fwht


def test_every_public_name_resolves() -> None:
    for name in projbench.__all__:
        assert getattr(projbench, name) is not None, name
        assert name in dir(projbench)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        projbench.nope  # noqa: B018
