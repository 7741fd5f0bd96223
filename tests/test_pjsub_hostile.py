"""Hostile ``.pjsub`` files: every header field that could steer an allocation is checked, and
every size bounded, before anything is allocated; each bad file gives one line
(:class:`InvalidArgumentError`) naming it, never a traceback, a hang or a huge allocation."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import projbench
from projbench import export as E
from projbench.errors import InvalidArgumentError
from projbench.subspace import SubspaceModel

D_MLP_DIGITS = (64 + 1) * 64 + (64 + 1) * 10  # D of mlp on digits with the default width


def _export(tmp_path: Path, name: str = "m.pjsub", **projection_options: Any) -> Path:
    sm = SubspaceModel.from_names("mlp", "digits", "fastfood", d=8, seed=3, **projection_options)
    with torch.no_grad():
        sm.theta_d.copy_(torch.linspace(-1, 1, 8))
    path = tmp_path / name
    sm.export(path)
    return path


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("<I", data, 8)
    return json.loads(data[12 : 12 + hlen]), data[12 + hlen : -4]


def _write(path: Path, head: bytes, body: bytes) -> None:
    """An export with this raw header and tensor bytes, and a CRC-32 that matches them."""
    data = E.MAGIC + struct.pack("<I", len(head)) + head + body
    path.write_bytes(data + struct.pack("<I", zlib.crc32(data)))


def _edit(path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    header, body = _split(path)
    edit(header)
    _write(path, json.dumps(header).encode(), body)
    return path


def _refused(path: Path, match: str, **kwargs: Any) -> str:
    """load_subspace(path) raises one InvalidArgumentError line naming the file and matching."""
    with pytest.raises(InvalidArgumentError, match=match) as info:
        projbench.load_subspace(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def _set_tensor(name: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(h: dict[str, Any]) -> None:
        next(t for t in h["tensors"] if t["name"] == name).update(fields)

    return edit


# --- header fields that would size an allocation ---------------------------------------------


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.update(d=10**12), r"'d'=1000000000000 is not in \[1, 4,810\] \(d cannot exceed D\)"),
        (lambda h: h.update(D=10**12), r"'D'=.* is not in \[1, 268,435,456\].*max_parameters="),
        (lambda h: h.update(d=0), r"'d'=0 is not in"),
        (lambda h: h.update(dtype="bool"), r"unknown dtype 'bool'"),
        (lambda h: h.update(device_type="xyz"), r"unknown device_type 'xyz'"),
        (lambda h: h.update(seed=2**70), r"'seed'=.* \(a torch seed\)"),
        (lambda h: h.update(projbench="1.0\nTraceback"), r"'projbench' is not a short printable string"),
        (lambda h: h.update(architecture_options={"width": 1e9}), r"width=1000000000 is over 1024×"),
        (lambda h: h.update(architecture_options={"width": 10**4000}), r"width=1000.*is over 1024×"),
        (lambda h: h["projection_options"].update(max_bytes=2**62), r"max_bytes=4611686018427387904 would "
         r"raise the memory budget.*max_bytes=N"),
        (lambda h: h["projection_options"].update(max_bytes="lots"), r"max_bytes='lots' would raise"),
        (lambda h: h["projection_options"].update(seed=1), r"projection 'fastfood' has no option 'seed'"),
        (lambda h: h["projection_options"].update(device="cuda"), r"has no option 'device'"),
        (_set_tensor("theta_d", shape=[-4, -4], nbytes=64), r"shape \[-4, -4\]: .* between 0 and the size"),
        (_set_tensor("theta_d", shape=[0, 2**62], nbytes=0), r"shape \[0, 4611686018427387904\]"),
        (_set_tensor("theta_d", shape=[1] * 9, nbytes=4), r"at most 8 dimensions"),
        (_set_tensor("theta_d", offset=-4), r"tensor 'theta_d' does not fit the file"),
        (_set_tensor("theta_d", offset=2**40), r"tensor 'theta_d' does not fit the file"),
        (_set_tensor("theta_d", shape=[4]), r"tensor 'theta_d' does not fit the file"),
        (_set_tensor("theta_d", shape=[4], nbytes=16), r"theta_d has shape \[4\].*header says \(8,\)"),
        (_set_tensor("theta_d", dtype="float64", shape=[4]), r"theta_d has shape \[4\] and dtype .*float64"),
        (lambda h: h["tensors"].append(dict(h["tensors"][0])), r"tensor 'theta_d' is stored twice"),
        (lambda h: h.update(tensors=[{"name": "theta_d", "shape": "8"}]), r"malformed tensor table"),
    ],
    ids=["d=1e12", "D=1e12", "d=0", "dtype-bool", "device-xyz", "seed-2^70", "version-newline", "width=1e9",
         "width=1e4000", "max_bytes-raised", "max_bytes-text", "option-seed", "option-device",
         "shape-negative", "shape-2^62", "shape-9-dims",
         "offset-negative", "offset-2^40", "nbytes-mismatch", "theta_d-wrong-size", "theta_d-wrong-dtype",
         "duplicate-tensor", "table-malformed"],
)
def test_malformed_header_is_one_line_before_any_allocation(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], match: str
) -> None:
    _refused(_edit(_export(tmp_path), edit), match)


def test_architecture_too_large_is_refused_from_its_meta_device_count(tmp_path: Path) -> None:
    """Options within 1024× their default can still build a model over the parameter cap: it is
    counted on the meta device and refused before being built."""
    path = _edit(_export(tmp_path), lambda h: h.update(architecture_options={"width": 60_000}))
    msg = _refused(path, r"mlp on digits .* has 4,500,010 parameters, over the limit of 100,000",
                   max_parameters=100_000)
    assert "max_parameters=N" in msg
    # and, within the limit, a different width is a different model: not the file's D
    _refused(path, rf"rebuilt model has D=4500010, the file D={D_MLP_DIGITS}")


def test_deep_architecture_option_is_refused_before_building(tmp_path: Path) -> None:
    sm = SubspaceModel.from_names("fc", "digits", "fastjl", d=4, architecture_options={"width": 3})
    sm.export(tmp_path / "fc.pjsub")
    path = _edit(tmp_path / "fc.pjsub", lambda h: h["architecture_options"].update(depth=10**6))
    _refused(path, r"depth=1000000 is over 1024× its default \(2\)")


def test_budget_from_the_file_may_only_narrow(tmp_path: Path) -> None:
    """A max_bytes the export was made with loads while it is within the projection's default
    (it only narrows the budget); one above it needs the caller's max_bytes, not the file's."""
    narrow = _export(tmp_path, "narrow.pjsub", max_bytes=10**6)
    assert projbench.load_subspace(narrow).projection_options["max_bytes"] == 10**6
    wide = _edit(_export(tmp_path, "wide.pjsub", max_bytes=10**6),
                 lambda h: h["projection_options"].update(max_bytes=2**40))
    _refused(wide, r"max_bytes=1099511627776 would raise the memory budget \(limit 2147483648\)")
    _refused(wide, r"\(limit 1000000000000\)", max_bytes=10**12)
    assert projbench.load_subspace(wide, max_bytes=2**40).d == 8


def test_header_nested_100k_deep_is_refused_without_recursion(tmp_path: Path) -> None:
    header, body = _split(_export(tmp_path))
    head = json.dumps(header).encode()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "deep.pjsub"
    _write(path, head, body)
    _refused(path, r"header nested deeper than 8 levels")
    # brackets inside strings are text, not nesting
    path = _edit(_export(tmp_path), lambda h: h.update(note="[" * 100))
    assert projbench.load_subspace(path).d == 8


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_number_in_header_is_refused(tmp_path: Path, constant: bytes) -> None:
    header, body = _split(_export(tmp_path))
    head = json.dumps(header).encode()[:-1] + b', "x": ' + constant + b"}"
    path = tmp_path / "inf.pjsub"
    _write(path, head, body)
    _refused(path, r"non-finite number")


def test_oversized_header_and_file_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _export(tmp_path)
    _refused(path, r"has \d[\d,]* bytes, over the limit of 100: .*max_file_bytes=N", max_file_bytes=100)
    monkeypatch.setattr("projbench.subspace_file.MAX_HEADER_BYTES", 100)
    _refused(path, r"header, over the limit of 100")


# --- the stored numbers ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_theta_d_with_a_valid_crc_is_refused(tmp_path: Path, value: float) -> None:
    header, body = _split(_export(tmp_path))
    entry = next(t for t in header["tensors"] if t["name"] == "theta_d")
    poisoned = bytearray(body)
    poisoned[entry["offset"] + 4 : entry["offset"] + 8] = struct.pack("<f", value)
    path = tmp_path / "nan.pjsub"
    _write(path, json.dumps(header).encode(), bytes(poisoned))
    _refused(path, r"theta_d holds NaN or infinite values")


def test_non_finite_stored_theta0_is_refused(tmp_path: Path) -> None:
    sm = SubspaceModel.from_names("mlp", "digits", "fastfood", d=8)
    sm.export(tmp_path / "t0.pjsub", include_theta0=True)
    header, body = _split(tmp_path / "t0.pjsub")
    entry = next(t for t in header["tensors"] if t["name"] == "theta0")
    poisoned = bytearray(body)
    poisoned[entry["offset"] : entry["offset"] + 4] = struct.pack("<f", float("nan"))
    _write(tmp_path / "t0.pjsub", json.dumps(header).encode(), bytes(poisoned))
    _refused(tmp_path / "t0.pjsub", r"theta0 holds NaN or infinite values")


# --- paths that are not regular files -------------------------------------------------------


def test_dev_zero_is_refused_without_reading(tmp_path: Path, deadline) -> None:
    with deadline(20):
        _refused(Path("/dev/zero"), r"cannot read /dev/zero: not a regular file")


def test_fifo_is_refused_without_blocking(tmp_path: Path, deadline) -> None:
    fifo = tmp_path / "m.pjsub"
    os.mkfifo(fifo)
    with deadline(20):
        _refused(fifo, r"not a regular file \(a folder, FIFO or device\)")


def test_folder_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, r"not a regular file")


def test_load_limits_must_be_positive_integers(tmp_path: Path) -> None:
    path = _export(tmp_path)
    for kwargs in ({"max_file_bytes": 0}, {"max_parameters": True}, {"max_bytes": 1.5}):
        with pytest.raises(InvalidArgumentError, match=f"{next(iter(kwargs))} must be a positive integer"):
            projbench.load_subspace(path, **kwargs)


def test_valid_file_still_loads_after_the_checks(tmp_path: Path) -> None:
    path = _export(tmp_path)
    loaded = projbench.load_subspace(path)
    assert (loaded.d, loaded.D) == (8, D_MLP_DIGITS)
    assert torch.equal(loaded.theta_d.detach(), torch.linspace(-1, 1, 8))
