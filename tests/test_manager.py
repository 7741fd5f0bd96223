"""Plugin discovery through entry points, built-in fallback, blocking, failures, duplicates."""

from __future__ import annotations

import re
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
import torch

import projbench
from projbench import manager
from projbench.errors import DuplicateNameError

# The third-party projection of DESIGN.md §3, verbatim in substance.
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


def install_fake_distribution(root: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """A real on-disk distribution (module + .dist-info with an entry point) on sys.path."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[projbench]\n{ep_name} = {module}\n")


@pytest.fixture
def third_party(tmp_path, monkeypatch, fresh_manager):
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


def test_builtin_fallback_when_entry_points_are_missing(monkeypatch, fresh_manager) -> None:
    monkeypatch.setattr(manager.metadata, "entry_points", lambda group: [])
    assert {"dense", "sparse", "fastfood", "fastjl"} <= set(projbench.list_plugins("projections"))
    assert all(p.builtin for p in manager.plugin_infos())


def test_plugin_that_fails_to_import_warns_and_the_rest_work(tmp_path, monkeypatch, fresh_manager) -> None:
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
    dup = types.ModuleType("dup")
    dense_cls = manager.get_registry("projections").get("dense")

    @projbench.hookimpl
    def projbench_register_projections(registry):
        registry.add(dense_cls)

    dup.projbench_register_projections = projbench_register_projections  # type: ignore[attr-defined]
    manager.register_plugin(dup, "dup-plugin")
    registry = manager.get_registry("projections")
    assert registry.conflicts() == {"dense": ["dup-plugin", "dense"]}  # pluggy order: latest first
    expected = "projection 'dense' is registered by 2 plugins ('dup-plugin', 'dense')"
    with pytest.raises(DuplicateNameError, match=re.escape(expected)):
        registry.get("dense")
    assert registry.get("dup-plugin:dense") is dense_cls and "fastjl" in registry


def test_unknown_registry_kind() -> None:
    with pytest.raises(projbench.UnknownNameError, match="choose one of"):
        manager.get_registry("widgets")


def test_no_warnings_on_a_clean_install(fresh_manager) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in manager.REGISTRY_HOOKS:
            manager.get_registry(kind)
