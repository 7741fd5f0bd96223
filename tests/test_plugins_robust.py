"""One bad plugin must not take the tool down (issue 9).

Every plugin here is a real on-disk distribution (module + ``.dist-info`` with an entry point
in the ``projbench`` group) put on ``sys.path``, found by ``importlib.metadata`` exactly as an
installed third-party package would be (same pattern as tests/test_manager.py).
"""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import projbench
from projbench import manager
from projbench.errors import DuplicateNameError, UnknownNameError
from projbench.registry import Registry


def install_fake_distribution(root: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """A real on-disk distribution (module + .dist-info with an entry point) on sys.path."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[projbench]\n{ep_name} = {module}\n")

# A third-party projection that (unwisely) calls itself "fastjl", like the built-in.
CLASH = '''
import torch, projbench

class MyFastJL(projbench.Projection):
    """Rademacher ±1/√D entries, registered under the built-in's name."""
    name = "fastjl"
    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (D, d), generator=g).to(dtype) * 2 - 1
        self.register_buffer("matrix", (signs / D**0.5).to(device))
    def forward(self, theta):
        return theta @ self.matrix.T
    def adjoint(self, y):
        return y @ self.matrix

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(MyFastJL)
'''

NAMELESS = '''
import projbench

class NoName(projbench.Projection):
    pass

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(NoName)          # InvalidArgumentError: no string attribute 'name'
'''

HALF_DONE = '''
import projbench, torch

class Fine(projbench.Projection):
    name = "fine-then-broken"
    def forward(self, theta):
        return theta
    def adjoint(self, y):
        return y

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Fine)
    registry.add(Fine)            # the same plugin twice: a bug of this plugin
'''

ORDERED = '''
import projbench
import order_log

@projbench.hookimpl({marker})
def projbench_register_projections(registry):
    order_log.calls.append({tag!r})
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch, fresh_manager):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PROJBENCH_PREFER", raising=False)
    monkeypatch.delenv("PROJBENCH_DISABLE_PLUGINS", raising=False)
    before = set(sys.modules)
    yield tmp_path
    for mod in set(sys.modules) - before:
        if mod.endswith("_plugin") or mod == "order_log":
            sys.modules.pop(mod, None)


@pytest.fixture
def clash(plugin_dir):
    install_fake_distribution(plugin_dir, "myplugin", "myfastjl_plugin", CLASH, "myplugin")
    return plugin_dir


# ------------------------------------------------------------------------------------------
# name clashes
# ------------------------------------------------------------------------------------------
def test_clash_is_reported_not_fatal(clash) -> None:
    names = projbench.list_plugins("projections")
    assert {"dense", "sparse", "fastfood"} <= set(names)
    # each candidate of the clash is listed once, by a name that resolves
    assert "fastjl:fastjl" in names and "myplugin:fastjl" in names and "fastjl" not in names
    (c,) = [c for c in manager.conflicts() if c.kind == "projections"]
    assert c.name == "fastjl" and sorted(c.plugins) == ["fastjl", "myplugin"] and c.chosen is None
    infos = {i.name: i for i in manager.plugin_infos()}
    assert infos["myplugin"].registers == {"projections": ["fastjl"]} and infos["myplugin"].error is None
    assert infos["myplugin"].conflicts == ["projections 'fastjl' also registered by 'fastjl'"]
    assert infos["fastjl"].conflicts == ["projections 'fastjl' also registered by 'myplugin'"]
    assert infos["dense"].conflicts == []
    # other names work as before
    P = projbench.make_projection("dense", d=3, D=16, seed=0)
    assert P(torch.randn(2, 3)).shape == (2, 16)


def test_only_the_ambiguous_bare_name_is_refused_with_a_one_line_hint(clash) -> None:
    with pytest.raises(DuplicateNameError) as info:
        projbench.make_projection("fastjl", d=3, D=16)
    msg = str(info.value)
    assert "\n" not in msg
    assert "'fastjl', 'myplugin'" in msg or "'myplugin', 'fastjl'" in msg
    assert "'myplugin:fastjl'" in msg and "'fastjl:fastjl'" in msg
    assert "PROJBENCH_PREFER=fastjl=myplugin" in msg
    assert "fastjl" not in manager.get_registry("projections")


def test_qualified_names_choose(clash) -> None:
    reg = manager.get_registry("projections")
    theirs = projbench.make_projection("myplugin:fastjl", d=3, D=16, seed=0)
    ours = projbench.make_projection("fastjl:fastjl", d=3, D=16, seed=0)
    assert type(theirs).__name__ == "MyFastJL" and type(ours).__module__ == "projbench.builtin.fastjl"
    assert reg.owner("myplugin:fastjl") == "myplugin" and reg.owner("fastjl:fastjl") == "fastjl"
    assert reg.qualified_name("myplugin:fastjl") == "myplugin:fastjl"
    assert reg.qualified_name("dense") == "dense:dense"
    with pytest.raises(UnknownNameError, match="plugin 'nope' does not register projection 'fastjl'"):
        reg.get("nope:fastjl")


@pytest.mark.parametrize("winner", ["myplugin", "fastjl"])
def test_prefer_env_chooses_the_winner(clash, monkeypatch, winner) -> None:
    monkeypatch.setenv("PROJBENCH_PREFER", f"fastjl={winner}")
    reg = manager.get_registry("projections")
    loser = "fastjl" if winner == "myplugin" else "myplugin"
    assert reg.owner("fastjl") == winner
    assert "fastjl" in reg.names() and f"{loser}:fastjl" in reg.names()
    assert f"{winner}:fastjl" not in reg.names()  # every object listed once
    P = projbench.make_projection("fastjl", d=3, D=16)
    assert (type(P).__name__ == "MyFastJL") == (winner == "myplugin")
    (c,) = [c for c in manager.conflicts() if c.kind == "projections"]
    assert c.chosen == winner


def test_prefer_env_naming_a_plugin_without_that_name_is_a_clear_error(clash, monkeypatch) -> None:
    monkeypatch.setenv("PROJBENCH_PREFER", "fastjl=myplugn")
    expected = "PROJBENCH_PREFER asks for projection 'fastjl' from plugin 'myplugn'"
    with pytest.raises(UnknownNameError, match=expected):
        projbench.make_projection("fastjl", d=3, D=16)


def test_malformed_prefer_env_warns_and_is_ignored(clash, monkeypatch) -> None:
    monkeypatch.setenv("PROJBENCH_PREFER", "fastjl")
    with pytest.warns(manager.PluginLoadWarning, match="PROJBENCH_PREFER: ignoring 'fastjl'"):
        reg = manager.get_registry("projections")
    with pytest.raises(DuplicateNameError):
        reg.get("fastjl")


def test_cli_list_plugins_and_other_projections_still_work(clash, tmp_path) -> None:
    from projbench.cli import cli

    runner = CliRunner()
    for args in (["list", "projections"], ["plugins"], ["list", "--json"], ["plugins", "--json"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, (args, res.output)
        assert "myplugin" in res.output
    out = tmp_path / "r.jsonl"
    res = runner.invoke(cli, ["run", "--proj", "dense", "--suite", "memory", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "memory",
                              "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "myplugin:fastjl" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------
# failing hooks
# ------------------------------------------------------------------------------------------
def test_hook_raising_a_projbench_error_is_skipped_with_a_warning(plugin_dir) -> None:
    install_fake_distribution(plugin_dir, "nameless", "nameless_plugin", NAMELESS, "nameless")
    expected = "'nameless' failed while registering projections.*name"
    with pytest.warns(manager.PluginLoadWarning, match=expected):
        names = projbench.list_plugins("projections")
    assert {"dense", "sparse", "fastfood", "fastjl"} <= set(names)
    info = {i.name: i for i in manager.plugin_infos()}["nameless"]
    assert info.error and "InvalidArgumentError" in info.error


def test_hook_failing_half_way_leaves_nothing_behind(plugin_dir) -> None:
    install_fake_distribution(plugin_dir, "halfdone", "halfdone_plugin", HALF_DONE, "halfdone")
    expected = "'halfdone'.*registers projection 'fine-then-broken' twice"
    with pytest.warns(manager.PluginLoadWarning, match=expected):
        names = projbench.list_plugins("projections")
    assert "fine-then-broken" not in names and "dense" in names


# ------------------------------------------------------------------------------------------
# hook order = pluggy's order
# ------------------------------------------------------------------------------------------
def test_tryfirst_and_trylast_mean_what_they_say(plugin_dir) -> None:
    (plugin_dir / "order_log.py").write_text("calls = []\n")
    # installed in this order; pluggy calls the later-registered normal hook first
    tags = (("first", "tryfirst=True"), ("plain_a", ""), ("plain_b", ""), ("last", "trylast=True"))
    for tag, marker in tags:
        install_fake_distribution(plugin_dir, f"ord_{tag}", f"ord_{tag}_plugin",
                                  ORDERED.format(marker=marker, tag=tag), f"ord-{tag}")
    manager.get_registry("projections")
    import order_log

    ours = list(order_log.calls)
    assert ours[0] == "first" and ours[-1] == "last"
    # exactly pluggy's own call order
    order_log.calls.clear()
    manager.get_plugin_manager().hook.projbench_register_projections(registry=Registry("projection"))
    assert ours == order_log.calls


# ------------------------------------------------------------------------------------------
# nothing registered for a kind
# ------------------------------------------------------------------------------------------
def test_disabled_suites_plugin_reports_an_empty_registry(monkeypatch, fresh_manager) -> None:
    monkeypatch.setenv("PROJBENCH_DISABLE_PLUGINS", "suites")
    reg = manager.get_registry("suites")
    assert reg.names() == []
    with pytest.raises(UnknownNameError) as info:
        reg.require_nonempty()
    msg = str(info.value)
    assert msg.startswith("no suite is registered") and "PROJBENCH_DISABLE_PLUGINS=suites" in msg
    with pytest.raises(UnknownNameError, match="PROJBENCH_DISABLE_PLUGINS=suites"):
        reg.get("speed")
    manager.get_registry("projections").require_nonempty()  # other kinds are unaffected


def test_clean_install_has_no_conflicts_and_no_warnings(fresh_manager) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manager.conflicts() == []
        assert all(not i.conflicts and i.error is None for i in manager.plugin_infos())
