from __future__ import annotations

import pytest

from projbench.errors import DuplicateNameError, InvalidArgumentError, UnknownNameError
from projbench.registry import Registry


class Thing:
    def __init__(self, name: str) -> None:
        self.name = name


def test_add_get_names_and_owner() -> None:
    reg: Registry[Thing] = Registry("thing")
    reg.current_plugin = "alpha"
    a = reg.add(Thing("fastfood"))
    reg.current_plugin = "beta"
    reg.add(Thing("fastjl"))
    assert reg.get("fastfood") is a
    assert reg.names() == ["fastfood", "fastjl"]
    assert reg.owner("fastjl") == "beta"
    assert reg.by_plugin("alpha") == ["fastfood"]
    assert "fastjl" in reg and len(reg) == 2


def test_unknown_name_lists_registered_and_closest_match() -> None:
    reg: Registry[Thing] = Registry("projection")
    for n in ("dense", "sparse", "fastfood", "fastjl"):
        reg.add(Thing(n))
    with pytest.raises(UnknownNameError) as info:
        reg.get("fastfod")
    msg = str(info.value)
    assert "unknown projection 'fastfod'" in msg
    assert "did you mean 'fastfood'?" in msg
    assert "dense, fastfood, fastjl, sparse" in msg


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    reg: Registry[Thing] = Registry("dataset")
    reg.add(Thing("mnist"))
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_duplicate_names_are_kept_and_the_bare_name_refused() -> None:
    reg: Registry[Thing] = Registry("projection")
    reg.current_plugin = "first-plugin"
    a = reg.add(Thing("fastjl"))
    reg.add(Thing("dense"))
    reg.current_plugin = "second-plugin"
    b = reg.add(Thing("fastjl"))
    assert reg.conflicts() == {"fastjl": ["first-plugin", "second-plugin"]}
    with pytest.raises(DuplicateNameError) as info:
        reg.get("fastjl")
    msg = str(info.value)
    assert "first-plugin" in msg and "second-plugin" in msg and "PROJBENCH_PREFER=fastjl=" in msg
    assert reg.get("first-plugin:fastjl") is a and reg.get("second-plugin:fastjl") is b
    assert reg.names() == ["dense", "first-plugin:fastjl", "second-plugin:fastjl"]
    assert "fastjl" not in reg and "dense" in reg and len(reg) == 3
    reg.prefer = {"fastjl": "second-plugin"}
    assert reg.get("fastjl") is b and reg.owner("fastjl") == "second-plugin"
    assert reg.names() == ["dense", "fastjl", "first-plugin:fastjl"]


def test_same_plugin_adding_a_name_twice_is_an_error() -> None:
    reg: Registry[Thing] = Registry("projection")
    reg.current_plugin = "p"
    reg.add(Thing("x"))
    with pytest.raises(DuplicateNameError, match="plugin 'p' registers projection 'x' twice"):
        reg.add(Thing("x"))


def test_discard_plugin_and_empty_hint() -> None:
    reg: Registry[Thing] = Registry("suite")
    reg.current_plugin = "p"
    reg.add(Thing("x"))
    assert reg.discard_plugin("p") == ["x"] and len(reg) == 0
    reg.empty_hint = "plugin 'suites' is blocked"
    with pytest.raises(UnknownNameError, match="unknown suite 'x': plugin 'suites' is blocked"):
        reg.get("x")
    with pytest.raises(UnknownNameError, match="no suite is registered: plugin 'suites' is blocked"):
        reg.require_nonempty()


def test_parse_prefer() -> None:
    from projbench.registry import parse_prefer

    assert parse_prefer(" fastjl = my , dense=x,,") == ({"fastjl": "my", "dense": "x"}, [])
    assert parse_prefer("fastjl,=x,a=") == ({}, ["fastjl", "=x", "a="])


def test_object_without_name_is_a_clear_error() -> None:
    reg: Registry[object] = Registry("thing")
    with pytest.raises(InvalidArgumentError, match="no string attribute 'name'"):
        reg.add(object())
    reg.add(object(), name="explicit")
    assert reg.names() == ["explicit"]
