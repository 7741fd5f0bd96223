"""Shared test configuration: hypothesis profiles, data path, a fresh plugin manager, fake
third-party distributions and a folder for them, a click runner, the command line run in-process,
a deadline for blocking calls."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

# Tests never reach out to dataset download hosts: missing data must give the offline error.
os.environ.setdefault("PROJBENCH_DOWNLOAD", "0")

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def data_dir() -> Path:
    """Real torchvision-layout data from $PROJBENCH_DATA; skips the test when unset."""
    raw = os.environ.get("PROJBENCH_DATA")
    if not raw or not Path(raw).is_dir():
        pytest.skip("PROJBENCH_DATA is not set to a data folder (e.g. ../shared/data)")
    return Path(raw)


@pytest.fixture
def fresh_manager():
    """Rebuild the plugin manager before and after a test that changes plugins."""
    from projbench import manager

    manager.reset()
    yield manager
    manager.reset()


def _install_fake_distribution(
    root: Path, dist: str, module: str, source: str, ep_name: str | None = None
) -> None:
    """A real on-disk distribution in ``root``: ``module``.py holding ``source`` and a
    ``.dist-info`` whose entry point ``ep_name`` (default: the module's name) is in the
    ``projbench`` group, found by ``importlib.metadata`` once ``root`` is on the path."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[projbench]\n{ep_name or module} = {module}\n")


@pytest.fixture
def install_fake_distribution() -> Callable[..., None]:
    """``install_fake_distribution(root, dist, module, source, ep_name=None)``: a third-party
    plugin as an installed package looks to ``importlib.metadata``."""
    return _install_fake_distribution


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch, fresh_manager):
    """A folder for fake distributions, on sys.path for in-process tests, with the plugin
    environment variables unset; the plugin modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("PROJBENCH_PREFER", "PROJBENCH_DISABLE_PLUGINS", "PROJBENCH_PLUGIN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    before = set(sys.modules)
    yield tmp_path
    for mod in set(sys.modules) - before:
        if mod.endswith("_plugin") or mod == "order_log":
            sys.modules.pop(mod, None)


@pytest.fixture
def runner() -> CliRunner:
    """A click test runner for the ``projbench`` command group."""
    return CliRunner()


def _cli_in_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``projbench ARGS`` run in this process, answered as a finished subprocess would be.

    For checks that stop before any work (a refused value, a missing file): the same group, the
    same error wrapper and exit status, without paying a new interpreter and the torch import. An
    exception that escaped the wrapper (a traceback in a real process) is raised here."""
    from projbench.cli import cli

    result = CliRunner().invoke(cli, list(args), env=env, prog_name="projbench")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli_in_process() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli_in_process(*args, env=None)``: the command line in-process, as a CompletedProcess."""
    return _cli_in_process


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging forever) when the block blocks for ``seconds``."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def deadline() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with deadline(20): …`` fails the test with ``TimeoutError`` if the block blocks 20 s."""
    return _deadline
