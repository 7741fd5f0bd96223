"""One bad plugin must not take the tool down.

Every plugin here is a real on-disk distribution (module + ``.dist-info`` with an entry point
in the ``projbench`` group) put on ``sys.path``, found by ``importlib.metadata`` exactly as an
installed third-party package would be (same pattern as tests/test_manager.py).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import projbench
from projbench import manager
from projbench.errors import DuplicateNameError, UnknownNameError
from projbench.registry import Registry

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

# Two third-party projections sharing one name that no built-in has: ``{cls}`` tells them apart.
SHARED = '''
import torch, projbench

class {cls}(projbench.Projection):
    name = "shared"
    def forward(self, theta):
        return torch.cat([theta, theta.new_zeros(*theta.shape[:-1], self.D - self.d)], -1)
    def adjoint(self, y):
        return y[..., : self.d]

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add({cls})
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
def clash(plugin_dir, install_fake_distribution):
    install_fake_distribution(plugin_dir, "myplugin", "myfastjl_plugin", CLASH, "myplugin")
    return plugin_dir


@pytest.fixture
def shared(clash, install_fake_distribution):
    """On top of ``clash``: two third parties, alpha and beta, both register "shared"."""
    for dist, cls in (("alpha", "AlphaShared"), ("beta", "BetaShared")):
        install_fake_distribution(clash, dist, f"{dist}_plugin", SHARED.format(cls=cls), dist)
    return clash


SHADOW_WARNING = "'myplugin' registers projection 'fastjl', a built-in name: 'fastjl' stays the built-in one"
BUILTIN_FASTJL = "projbench.builtin.fastjl"


# ------------------------------------------------------------------------------------------
# name clashes
# ------------------------------------------------------------------------------------------
def test_clash_is_reported_not_fatal(clash) -> None:
    with pytest.warns(manager.PluginLoadWarning, match=re.escape(SHADOW_WARNING) + ".*'myplugin:fastjl'"):
        names = projbench.list_plugins("projections")
    assert {"dense", "sparse", "fastfood"} <= set(names)
    # each candidate of the clash is listed once, by a name that resolves: the built-in keeps
    # the bare name, the third party is listed qualified
    assert "fastjl" in names and "myplugin:fastjl" in names and "fastjl:fastjl" not in names
    assert [n for n in names if n.endswith("fastjl")] == ["fastjl", "myplugin:fastjl"]
    (c,) = [c for c in manager.conflicts() if c.kind == "projections"]
    assert c.name == "fastjl" and sorted(c.plugins) == ["fastjl", "myplugin"] and c.chosen == "fastjl"
    assert c.message == ("projection 'fastjl': the built-in plugin keeps it: 'fastjl'; "
                         "the others as 'myplugin:fastjl'")
    infos = {i.name: i for i in manager.plugin_infos()}
    assert infos["myplugin"].registers == {"projections": ["myplugin:fastjl"]}
    assert infos["myplugin"].error is None and not infos["myplugin"].builtin
    assert infos["fastjl"].registers == {"projections": ["fastjl"]} and infos["fastjl"].builtin
    assert infos["myplugin"].conflicts == ["projections 'fastjl' also registered by 'fastjl'"]
    assert infos["fastjl"].conflicts == ["projections 'fastjl' also registered by 'myplugin'"]
    assert infos["dense"].conflicts == []
    # both objects are usable: the bare name is the built-in's, the qualified one the plugin's
    assert type(projbench.make_projection("fastjl", d=3, D=16)).__module__ == BUILTIN_FASTJL
    assert type(projbench.make_projection("myplugin:fastjl", d=3, D=16)).__name__ == "MyFastJL"
    # other names work as before
    P = projbench.make_projection("dense", d=3, D=16, seed=0)
    assert P(torch.randn(2, 3)).shape == (2, 16)


def test_only_the_ambiguous_bare_name_is_refused_with_a_one_line_hint(shared) -> None:
    with pytest.warns(manager.PluginLoadWarning) as record:
        reg = manager.get_registry("projections")
    # the built-in clash warns; the clash between third parties does not (it is refused on use)
    assert [str(w.message) for w in record if "shared" in str(w.message)] == []
    assert any(SHADOW_WARNING in str(w.message) for w in record)
    (c,) = [c for c in manager.conflicts() if c.kind == "projections" and c.name == "shared"]
    assert sorted(c.plugins) == ["alpha", "beta"] and c.chosen is None
    with pytest.raises(DuplicateNameError) as info:
        projbench.make_projection("shared", d=3, D=16)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("projection 'shared' is registered by 2 plugins (")
    assert f"({c.plugins[0]!r}, {c.plugins[1]!r})" in msg
    assert "'alpha:shared'" in msg and "'beta:shared'" in msg
    assert msg.endswith(f"PROJBENCH_PREFER=shared={c.plugins[0]}")
    assert msg == c.message
    assert "shared" not in reg and reg.owner("alpha:shared") == "alpha"
    assert "alpha:shared" in reg.names() and "beta:shared" in reg.names() and "shared" not in reg.names()
    # the names the hint offers work
    assert type(projbench.make_projection("alpha:shared", d=3, D=16)).__name__ == "AlphaShared"
    assert type(projbench.make_projection("beta:shared", d=3, D=16)).__name__ == "BetaShared"
    # only the ambiguous name is refused: the built-in's name, shadowed or not, still resolves
    assert reg.owner("fastjl") == "fastjl" and reg.owner("myplugin:fastjl") == "myplugin"
    assert type(projbench.make_projection("fastjl", d=3, D=16)).__module__ == BUILTIN_FASTJL
    assert projbench.make_projection("dense", d=3, D=16)(torch.randn(2, 3)).shape == (2, 16)


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


@pytest.mark.parametrize("raw", ["fastjl", "shared", "fastjl=", "=myplugin", "shared=  "])
def test_malformed_prefer_env_warns_and_is_ignored(shared, monkeypatch, raw) -> None:
    monkeypatch.setenv("PROJBENCH_PREFER", raw)
    expected = f"PROJBENCH_PREFER: ignoring {raw.strip()!r}; write name=plugin"
    with pytest.warns(manager.PluginLoadWarning) as record:
        reg = manager.get_registry("projections")
    messages = [str(w.message) for w in record]
    assert sum(m.startswith(expected) for m in messages) == 1, messages
    assert sum(SHADOW_WARNING in m for m in messages) == 1, messages
    # resolution is exactly as without the variable
    assert reg.prefer == {}
    assert reg.get("fastjl").__module__ == BUILTIN_FASTJL and reg.owner("fastjl") == "fastjl"
    assert reg.get("myplugin:fastjl").__name__ == "MyFastJL"
    with pytest.raises(DuplicateNameError, match="'shared' is registered by 2 plugins"):
        reg.get("shared")


def _case_plugins(out: Path) -> set[str]:
    """The plugins recorded for the cases of a run written under ``out``."""
    files = [out] if out.is_file() else sorted(out.rglob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    cases = [r for r in records if r.get("type") == "case"]
    assert cases and all(r["status"] == "ok" for r in cases), records
    return {r["identity"]["plugin"] for r in cases}


def test_cli_list_plugins_and_other_projections_still_work(shared, tmp_path) -> None:
    from projbench.cli import cli

    runner = CliRunner()
    for args in (["list", "projections"], ["plugins"], ["list", "--json"], ["plugins", "--json"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, (args, res.output)
        assert "myplugin" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["list", "--json"])
    assert "myplugin:fastjl" in res.output and "alpha:shared" in res.output
    out = tmp_path / "r.jsonl"
    res = runner.invoke(cli, ["run", "--proj", "dense", "--suite", "memory", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _case_plugins(out) == {"dense"}
    # the bare built-in name runs the built-in, despite the third party's clash
    out = tmp_path / "x.jsonl"
    res = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "memory", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _case_plugins(out) == {"fastjl"}
    # a name shared by two third parties is refused in one line, without a traceback
    res = runner.invoke(cli, ["run", "--proj", "shared", "--suite", "memory",
                              "--out", str(tmp_path / "y.jsonl")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "'alpha:shared'" in res.output and "'beta:shared'" in res.output
    assert "PROJBENCH_PREFER=shared=" in res.output


# ------------------------------------------------------------------------------------------
# failing hooks
# ------------------------------------------------------------------------------------------
def test_hook_raising_a_projbench_error_is_skipped_with_a_warning(
    plugin_dir, install_fake_distribution
) -> None:
    install_fake_distribution(plugin_dir, "nameless", "nameless_plugin", NAMELESS, "nameless")
    expected = "'nameless' failed while registering projections.*name"
    with pytest.warns(manager.PluginLoadWarning, match=expected):
        names = projbench.list_plugins("projections")
    assert {"dense", "sparse", "fastfood", "fastjl"} <= set(names)
    info = {i.name: i for i in manager.plugin_infos()}["nameless"]
    assert info.error and "InvalidArgumentError" in info.error


def test_hook_failing_half_way_leaves_nothing_behind(plugin_dir, install_fake_distribution) -> None:
    install_fake_distribution(plugin_dir, "halfdone", "halfdone_plugin", HALF_DONE, "halfdone")
    expected = "'halfdone'.*registers projection 'fine-then-broken' twice"
    with pytest.warns(manager.PluginLoadWarning, match=expected):
        names = projbench.list_plugins("projections")
    assert "fine-then-broken" not in names and "dense" in names


# ------------------------------------------------------------------------------------------
# hook order = pluggy's order
# ------------------------------------------------------------------------------------------
def test_tryfirst_and_trylast_mean_what_they_say(plugin_dir, install_fake_distribution) -> None:
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
