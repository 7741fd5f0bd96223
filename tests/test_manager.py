"""Plugin discovery through entry points, built-in fallback, blocking, failures, duplicates."""

from __future__ import annotations

import re
import sys
import types
import warnings

import pytest
import torch

import projbench
from projbench import manager
from projbench.builtin.plugins import BUILTIN_PLUGINS
from projbench.errors import DuplicateNameError

# A third-party projection as a plugin author writes it.
DESIGN_EXAMPLE = '''
import torch, projbench

class Rademacher(projbench.Projection):
    name = "rademacher"
    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (D, d), generator=g).to(dtype) * 2 - 1
        self.register_buffer("matrix", (signs / D**0.5).to(device))
    def forward(self, theta):            # (..., d) -> (..., D)
        return theta @ self.matrix.T
    def adjoint(self, y):                # (..., D) -> (..., d)
        return y @ self.matrix

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Rademacher)
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch, fresh_manager, install_fake_distribution):
    install_fake_distribution(
        tmp_path, "rademacher_plugin", "rademacher_plugin", DESIGN_EXAMPLE, "rademacher"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("rademacher_plugin", None)


def test_builtins_are_registered() -> None:
    names = projbench.list_plugins("projections")
    for builtin in ("dense", "sparse", "fastfood", "fastjl"):
        assert builtin in names
    assert "torch" in projbench.list_plugins("backends")


def test_design_example_plugin_is_found_through_its_entry_point(third_party) -> None:
    assert "rademacher" in projbench.list_plugins("projections")
    info = {p.name: p for p in manager.plugin_infos()}["rademacher"]
    assert info.version == "1.2.3" and not info.builtin
    assert info.registers == {"projections": ["rademacher"]}
    P = projbench.make_projection("rademacher", d=3, D=10, seed=1)
    theta = torch.randn(2, 3)
    torch.testing.assert_close(P(theta), theta @ P.to_dense().T)


def test_disable_env_blocks_plugins(monkeypatch, fresh_manager) -> None:
    monkeypatch.setenv("PROJBENCH_DISABLE_PLUGINS", "fastjl, sparse")
    names = projbench.list_plugins("projections")
    assert "fastjl" not in names and "sparse" not in names and "dense" in names


def test_builtins_need_no_entry_points(monkeypatch, fresh_manager) -> None:
    monkeypatch.setattr(manager.metadata, "entry_points", lambda group: [])
    assert {"dense", "sparse", "fastfood", "fastjl", "kronecker", "kronecker-sum"} <= set(
        projbench.list_plugins("projections"))
    infos = manager.plugin_infos()
    assert all(p.builtin for p in infos)
    assert [p.name for p in infos] == sorted(p.name for p in BUILTIN_PLUGINS)


def test_entry_points_left_by_an_older_projbench_install_are_ignored(
    plugin_dir, install_fake_distribution
) -> None:
    # an install made when the built-ins were entry points of the projbench distribution
    install_fake_distribution(plugin_dir, "projbench", "stale_fastjl_entry", "raise SystemExit(3)\n",
                              ep_name="fastjl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infos = {p.name: p for p in manager.plugin_infos()}
    assert infos["fastjl"].builtin and infos["fastjl"].module == "projbench.builtin.fastjl"
    assert "stale_fastjl_entry" not in sys.modules


def test_plugin_that_fails_to_import_warns_and_the_rest_work(
    tmp_path, monkeypatch, fresh_manager, install_fake_distribution
) -> None:
    install_fake_distribution(tmp_path, "broken_plugin", "broken_plugin", "raise ImportError('no numpy9')",
                              "broken")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(manager.PluginLoadWarning, match="'broken'.*no numpy9"):
        names = projbench.list_plugins("projections")
    assert "fastjl" in names
    failed = {p.name: p for p in manager.plugin_infos()}["broken"]
    assert failed.error and "no numpy9" in failed.error


def test_plugin_whose_hook_raises_warns_and_is_skipped(fresh_manager) -> None:
    bad = types.ModuleType("bad_hook")

    @projbench.hookimpl
    def projbench_register_projections(registry):
        raise RuntimeError("boom")

    bad.projbench_register_projections = projbench_register_projections  # type: ignore[attr-defined]
    manager.register_plugin(bad, "bad-hook")
    with pytest.warns(manager.PluginLoadWarning, match="bad-hook.*boom"):
        names = projbench.list_plugins("projections")
    assert "dense" in names


def test_duplicate_projection_name_is_a_conflict_not_an_outage(fresh_manager) -> None:
    dense_cls = manager.get_registry("projections").get("dense")

    def runtime_plugin(module_name: str) -> types.ModuleType:
        """A third party registering the built-in dense class as "dense" and as "twin"."""
        module = types.ModuleType(module_name)

        @projbench.hookimpl
        def projbench_register_projections(registry):
            registry.add(dense_cls)
            registry.add(dense_cls, name="twin")

        module.projbench_register_projections = projbench_register_projections  # type: ignore[attr-defined]
        return module

    manager.register_plugin(runtime_plugin("dup"), "dup-plugin")
    expected_warning = ("projbench plugin 'dup-plugin' registers projection 'dense', a built-in name: "
                        "'dense' stays the built-in one (plugin 'dense'); use 'dup-plugin:dense'")
    with pytest.warns(manager.PluginLoadWarning, match=re.escape(expected_warning)):
        registry = manager.get_registry("projections")
    assert registry.conflicts() == {"dense": ["dup-plugin", "dense"]}  # pluggy order: latest first
    # the bare name stays the built-in's; the third party's is reachable qualified
    assert registry.get("dense") is dense_cls and registry.owner("dense") == "dense"
    assert registry.get("dup-plugin:dense") is dense_cls
    assert registry.owner("dup-plugin:dense") == "dup-plugin"
    assert registry.qualified_name("dense") == "dense:dense"
    assert "dense" in registry.names() and "dup-plugin:dense" in registry.names()
    assert "dense:dense" not in registry.names() and "fastjl" in registry
    assert registry.owner("twin") == "dup-plugin"  # a name nobody else has is the third party's
    (c,) = [c for c in manager.conflicts() if c.kind == "projections"]
    assert c.chosen == "dense" and c.message == (
        "projection 'dense': the built-in plugin keeps it: 'dense'; the others as 'dup-plugin:dense'")

    # a second third party: "dense" stays the built-in's, while "twin", which only the two
    # third parties share, is ambiguous and refused in one line; everything else still works
    manager.register_plugin(runtime_plugin("dup2"), "dup-other")
    with pytest.warns(manager.PluginLoadWarning) as record:
        registry = manager.get_registry("projections")
    # one warning per third party shadowed by the built-in, none about "twin"
    assert sorted(str(w.message).split("'")[1] for w in record) == ["dup-other", "dup-plugin"]
    assert all("registers projection 'dense', a built-in name" in str(w.message) for w in record)
    assert registry.conflicts() == {"dense": ["dup-other", "dup-plugin", "dense"],
                                    "twin": ["dup-other", "dup-plugin"]}
    assert registry.get("dense") is dense_cls and registry.owner("dense") == "dense"
    expected = ("projection 'twin' is registered by 2 plugins ('dup-other', 'dup-plugin'); choose one "
                "by its qualified name ('dup-other:twin', 'dup-plugin:twin') or set "
                "PROJBENCH_PREFER=twin=dup-other")
    with pytest.raises(DuplicateNameError) as info:
        registry.get("twin")
    assert str(info.value) == expected
    assert "twin" not in registry and registry.owner("dup-plugin:twin") == "dup-plugin"
    assert registry.owner("dup-other:twin") == "dup-other" and "fastjl" in registry
    (c,) = [c for c in manager.conflicts() if c.kind == "projections" and c.name == "twin"]
    assert c.chosen is None and c.message == expected


def test_unknown_registry_kind() -> None:
    with pytest.raises(projbench.UnknownNameError, match="choose one of"):
        manager.get_registry("widgets")


def test_no_warnings_on_a_clean_install(fresh_manager) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in manager.REGISTRY_HOOKS:
            manager.get_registry(kind)
