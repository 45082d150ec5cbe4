"""The package reader trusts nothing: every hostile package is a one-line ModelLoadError, never a Python
error, a hang, or another model run in its place (issue 11, items 2 and 3)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import DevicefitError, InputError, ModelLoadError
from tests.helpers import convert


class _MLP(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc = torch.nn.Linear(6, width)

    def forward(self, x):
        return torch.relu(self.fc(x))


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[Path, Path]:
    """Two saved packages with weights in weight.bin: the one under test, and a different one beside it."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("pkgs")
    good, other = root / "good.mlpackage", root / "other.mlpackage"
    convert(_MLP(5).eval(), torch.randn(2, 6)).save(str(good))
    convert(_MLP(7).eval(), torch.randn(2, 6)).save(str(other))
    return good, other


@pytest.fixture
def pkg(packages, tmp_path) -> Path:
    """A fresh copy of the good package to damage, with the other package next to it."""
    good, other = packages
    shutil.copytree(good, tmp_path / "m.mlpackage")
    shutil.copytree(other, tmp_path / "other.mlpackage")
    return tmp_path / "m.mlpackage"


def _manifest(pkg: Path) -> dict:
    return json.loads((pkg / "Manifest.json").read_text())


def _root_entry(manifest: dict) -> dict:
    return manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]


def _set_root_path(pkg: Path, value: object) -> None:
    manifest = _manifest(pkg)
    _root_entry(manifest)["path"] = value
    (pkg / "Manifest.json").write_text(json.dumps(manifest))


def _model_file(pkg: Path) -> Path:
    return pkg / "Data" / _root_entry(_manifest(pkg))["path"]


def _load_within(path: Path, seconds: float = 20.0) -> BaseException | None:
    """interp.load(path) in a thread; fails the test if it blocks (a FIFO opened for reading would)."""
    result: list[BaseException | None] = []

    def target() -> None:
        try:
            interp.load(path)
            result.append(None)
        except BaseException as e:  # handed back to the test
            result.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"interp.load blocked on {path}"
    return result[0]


def test_the_intact_package_loads(pkg):
    out = interp.load(pkg).run({"x": np.ones((2, 6), np.float32)})
    assert next(iter(out.values())).shape == (2, 5)


@pytest.mark.parametrize(
    "escape", ["../../other.mlpackage/Data/{rel}", "/abs", "{rel}/../../../../other.mlpackage/Data/{rel}"]
)
def test_root_model_path_cannot_leave_the_package(pkg, escape):
    rel = _root_entry(_manifest(pkg))["path"]
    target = escape.format(rel=rel)
    if target == "/abs":
        target = str((pkg.parent / "other.mlpackage" / "Data" / rel).resolve())
    _set_root_path(pkg, target)
    with pytest.raises(ModelLoadError, match="relative path inside"):
        interp.load(pkg)


def test_symlinked_model_file_leading_out_is_refused(pkg):
    model_file = _model_file(pkg)
    other = pkg.parent / "other.mlpackage" / "Data" / _root_entry(_manifest(pkg))["path"]
    model_file.unlink()
    model_file.symlink_to(other)
    with pytest.raises(ModelLoadError, match="leads outside"):
        interp.load(pkg)


@pytest.mark.parametrize("value", [7, 1.5, ["a"], {"a": 1}, None, ""])
def test_root_path_of_the_wrong_json_type(pkg, value):
    _set_root_path(pkg, value)
    with pytest.raises(ModelLoadError, match="no path string"):
        interp.load(pkg)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "null",
        "3",
        '"x"',
        '{"rootModelIdentifier": 5, "itemInfoEntries": {}}',
        '{"rootModelIdentifier": "a", "itemInfoEntries": []}',
        "{",
        "\xff\xfe",
    ],
)
def test_manifest_of_the_wrong_shape(pkg, text):
    (pkg / "Manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelLoadError, match=r"Manifest\.json"):
        interp.load(pkg)


def test_deeply_nested_manifest_is_not_a_recursion_error(pkg):
    (pkg / "Manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelLoadError, match=r"Manifest\.json"):
        interp.load(pkg)


def test_oversized_manifest_is_refused_before_reading(pkg):
    with open(pkg / "Manifest.json", "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of zeros
    with pytest.raises(ModelLoadError, match="over the"):
        interp.load(pkg)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("which", ["manifest", "model", "weights"])
def test_fifo_files_are_refused_without_blocking(pkg, which):
    target = {
        "manifest": pkg / "Manifest.json",
        "model": _model_file(pkg),
        "weights": next(pkg.rglob("weight.bin")),
    }[which]
    target.unlink()
    os.mkfifo(target)
    error = _load_within(pkg)
    assert isinstance(error, ModelLoadError) and "FIFO" in str(error), error


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_manifest_symlinked_to_a_device_is_refused(pkg):
    (pkg / "Manifest.json").unlink()
    (pkg / "Manifest.json").symlink_to("/dev/zero")
    error = _load_within(pkg)
    assert isinstance(error, ModelLoadError) and ("leads outside" in str(error) or "device" in str(error)), (
        error
    )


def test_directories_in_place_of_files(pkg):
    weights = next(pkg.rglob("weight.bin"))
    weights.unlink()
    weights.mkdir()
    with pytest.raises(ModelLoadError, match="is a directory"):
        interp.load(pkg)


def test_model_file_that_is_a_directory(pkg):
    model_file = _model_file(pkg)
    model_file.unlink()
    model_file.mkdir()
    with pytest.raises(ModelLoadError, match="is a directory"):
        interp.load(pkg)


def _edit_spec(pkg: Path, edit: Callable) -> None:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    model_file = _model_file(pkg)
    spec.ParseFromString(model_file.read_bytes())
    edit(spec)
    model_file.write_bytes(spec.SerializeToString())


def _blob_values(spec) -> list:
    found = []
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                for attr in op.attributes.values():
                    if attr.WhichOneof("value") == "blobFileValue":
                        found.append(attr.blobFileValue)
    assert found
    return found


@pytest.mark.parametrize("name", ["", "@model_path/weights/", "@model_path/weights/..", "."])
def test_blob_file_names_that_name_no_file(pkg, name):
    def edit(spec):
        _blob_values(spec)[0].fileName = name

    _edit_spec(pkg, edit)
    with pytest.raises(ModelLoadError, match="names no file"):
        interp.load(pkg)


@pytest.mark.parametrize("offset", [0, 8, 1 << 40, (1 << 63) - 1])
def test_blob_offsets_outside_the_file(pkg, offset):
    def edit(spec):
        _blob_values(spec)[0].offset = offset

    _edit_spec(pkg, edit)
    with pytest.raises(ModelLoadError, match="truncated or"):
        interp.load(pkg)


def test_program_with_no_functions(pkg):
    _edit_spec(pkg, lambda spec: spec.mlProgram.functions.clear())
    with pytest.raises(ModelLoadError, match="no functions"):
        interp.load(pkg)


def test_name_too_long_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot examine"):
        interp.load(tmp_path / ("x" * 10_000 + ".mlpackage"))


@pytest.mark.parametrize("shape", [[1, 3, 2048, 2048], [2, 6, 1], [12]])
def test_description_must_agree_with_the_program(pkg, shape):
    def edit(spec):
        array = spec.description.input[0].type.multiArrayType
        del array.shape[:]
        array.shape.extend(shape)

    _edit_spec(pkg, edit)
    with pytest.raises(ModelLoadError, match=r"declares input 'x' as .*but the program takes 2x6"):
        interp.load(pkg)


def test_description_without_a_shape_gets_the_programs(pkg):
    _edit_spec(pkg, lambda spec: spec.description.input[0].type.multiArrayType.ClearField("shape"))
    prog = interp.load(pkg)
    assert prog.inputs[0].shape == (2, 6)
    with pytest.raises(InputError, match="shape 3x6"):
        prog.run({"x": np.ones((3, 6), np.float32)})


def test_generated_inputs_are_bounded(pkg, monkeypatch):
    prog = interp.load(pkg)
    assert prog.example_inputs()["x"].shape == (2, 6)
    with pytest.raises(
        InputError, match=r"input 'x' is declared 2x6 .*--max-input-mb.*DEVICEFIT_MAX_INPUT_BYTES"
    ):
        prog.example_inputs(max_bytes=16)
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", "16")
    with pytest.raises(InputError, match="input 'x'"):
        prog.example_inputs()
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", "lots")
    with pytest.raises(InputError, match="DEVICEFIT_MAX_INPUT_BYTES='lots'"):
        prog.example_inputs()


def test_every_error_above_is_a_devicefit_error():
    assert issubclass(ModelLoadError, DevicefitError) and issubclass(InputError, DevicefitError)


def test_data_folder_symlinked_out_is_refused(pkg):
    shutil.rmtree(pkg / "Data")
    (pkg / "Data").symlink_to(pkg.parent / "other.mlpackage" / "Data")
    with pytest.raises(ModelLoadError, match="leads outside"):
        interp.load(pkg)


def test_manifest_symlinked_out_is_refused(pkg):
    (pkg / "Manifest.json").unlink()
    (pkg / "Manifest.json").symlink_to(pkg.parent / "other.mlpackage" / "Manifest.json")
    with pytest.raises(ModelLoadError, match="leads outside"):
        interp.load(pkg)


def test_weights_folder_symlinked_out_is_refused(pkg):
    weights = next(pkg.rglob("weight.bin")).parent
    shutil.rmtree(weights)
    weights.symlink_to(next((pkg.parent / "other.mlpackage").rglob("weight.bin")).parent)
    with pytest.raises(ModelLoadError, match="leads outside"):
        interp.load(pkg)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_given_as_the_model_is_refused_without_reading():
    error = _load_within(Path("/dev/zero"))
    assert isinstance(error, ModelLoadError) and "is a device" in str(error), error


def _weight_file(pkg: Path) -> Path:
    return pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


def test_blob_larger_than_its_declared_type_is_refused_before_reading(pkg):
    """coremltools copies a blob by its header's size: a 2 GiB claim in a sparse file took 8.7 GB of memory
    before failing. (64 MiB here, so that the old reader survives the test too.)"""
    import struct

    path = _weight_file(pkg)
    data = bytearray(path.read_bytes())
    first = data.find(struct.pack("<I", 0xDEADBEEF))
    data_offset = struct.unpack("<Q", data[first + 16 : first + 24])[0]
    claim = 64 << 20
    data[first + 8 : first + 16] = struct.pack("<Q", claim)
    path.write_bytes(data)
    with open(path, "r+b") as f:
        f.truncate(data_offset + claim + 64)  # sparse: a few KiB on disk
    with pytest.raises(ModelLoadError, match=r"holds 67,108,864 bytes .* whose declared type needs \d+"):
        interp.load(pkg)


def test_weights_beyond_the_memory_limit_are_refused(pkg):
    from devicefit.sources.coreml_package import check_weight_blobs, read_spec

    spec, weights_dir, origin = read_spec(pkg)
    check_weight_blobs(spec, weights_dir, origin)  # the machine's RAM: fine
    with pytest.raises(ModelLoadError, match=r"more than the 0\.0 GiB of memory here"):
        check_weight_blobs(spec, weights_dir, origin, max_total_bytes=16)
