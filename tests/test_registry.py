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


def test_duplicate_names_both_plugins() -> None:
    reg: Registry[Thing] = Registry("projection")
    reg.current_plugin = "first-plugin"
    reg.add(Thing("fastjl"))
    reg.current_plugin = "second-plugin"
    with pytest.raises(DuplicateNameError) as info:
        reg.add(Thing("fastjl"))
    assert "first-plugin" in str(info.value) and "second-plugin" in str(info.value)


def test_object_without_name_is_a_clear_error() -> None:
    reg: Registry[object] = Registry("thing")
    with pytest.raises(InvalidArgumentError, match="no string attribute 'name'"):
        reg.add(object())
    reg.add(object(), name="explicit")
    assert reg.names() == ["explicit"]
