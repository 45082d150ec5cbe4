"""Crafted ``.mlpackage`` folders given to ``devicefit check`` / ``compress`` (the sources stage).

``load_source`` used to hand the folder straight to ``coremltools.models.MLModel``, which follows whatever
path Manifest.json names: ``../../dev/zero`` read without end (MemoryError), a FIFO outside the package
blocked forever, ``/etc/passwd`` was parsed as a model, and a truncated weight file reached coremltools'
C++ blob reader, which trusts its offsets. The interpreter's reader refused all of these; now
the sources stage uses the same reader before coremltools sees the package.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from devicefit.errors import ModelLoadError
from devicefit.sources import load_source
from tests.helpers import convert, within


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "base.mlpackage"
    convert(torch.nn.Linear(4, 3).eval(), torch.randn(2, 4)).save(str(path))
    return path


def _copy(package: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "crafted.mlpackage"
    shutil.copytree(package, copy)
    return copy


def _point_root_model_at(package: Path, rel: str) -> None:
    manifest = package / "Manifest.json"
    data = json.loads(manifest.read_text())
    data["itemInfoEntries"][data["rootModelIdentifier"]]["path"] = rel
    manifest.write_text(json.dumps(data))


def _within(seconds: float, fn):
    return within(seconds, fn, "blocked on a file named by the package")


def test_intact_package_still_loads(package):
    source = load_source(str(package))
    assert source.kind == "coreml" and [s.name for s in source.input_specs] == ["x"]


def test_manifest_path_outside_the_package_is_refused(package, tmp_path):
    crafted = _copy(package, tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\x08\x01")  # a valid tiny proto: coremltools would happily read it
    _point_root_model_at(crafted, "../../outside.bin")
    with pytest.raises(ModelLoadError, match="must be a relative path inside"):
        load_source(str(crafted))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_manifest_path_to_a_fifo_does_not_hang(package, tmp_path):
    crafted = _copy(package, tmp_path)
    os.mkfifo(tmp_path / "pipe")
    _point_root_model_at(crafted, "../../pipe")
    with pytest.raises(ModelLoadError, match="must be a relative path inside"):
        _within(20, lambda: load_source(str(crafted)))
    # the same through a symlink inside Data/, and a FIFO in place of the model file
    _point_root_model_at(crafted, "com.apple.CoreML/model.mlmodel")
    model_file = crafted / "Data" / "com.apple.CoreML" / "model.mlmodel"
    model_file.unlink()
    os.mkfifo(model_file)
    with pytest.raises(ModelLoadError, match="FIFO"):
        _within(20, lambda: load_source(str(crafted)))


def test_truncated_weights_are_refused_before_coremltools_reads_them(package, tmp_path):
    crafted = _copy(package, tmp_path)
    weights = crafted / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    with open(weights, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ModelLoadError, match="truncated"):
        load_source(str(crafted))


def test_cli_check_on_a_manifest_leading_out_exits_2(package, tmp_path, capsys):
    """(Not ``/dev/zero`` itself: on a regression that test would eat the machine's memory.)"""
    from devicefit.cli import main

    crafted = _copy(package, tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"\x08\x01")
    _point_root_model_at(crafted, "../" * 40 + str(tmp_path / "outside.bin").lstrip("/"))
    assert _within(60, lambda: main(["check", str(crafted)])) == 2
    err = capsys.readouterr().err.strip()
    assert "must be a relative path inside" in err and len(err.splitlines()) == 1, err


def _truncated(package: Path, tmp_path: Path) -> Path:
    crafted = _copy(package, tmp_path)
    with open(crafted / "Data" / "com.apple.CoreML" / "weights" / "weight.bin", "r+b") as f:
        f.truncate(100)
    return crafted


def _one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    from devicefit.cli import main

    assert _within(60, lambda: main(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_cli_merge_checks_each_package_first(package, tmp_path, capsys):
    """merge gave coremltools the paths unchecked: a truncated weight file was an internal error (exit 3)."""
    out = tmp_path / "merged.mlpackage"
    crafted = _truncated(package, tmp_path)
    _one_line_exit_2(capsys, ["merge", str(package), str(crafted), "-o", str(out)], "truncated")
    assert not out.exists()


def test_cli_profile_of_a_damaged_package_is_bad_input(package, tmp_path, capsys):
    """profile reported a damaged package as one failed row per engine and exit 1 (a verdict), not exit 2."""
    crafted = _truncated(package, tmp_path)
    _one_line_exit_2(capsys, ["profile", str(crafted), "--reps", "2"], "truncated")
    not_a_folder = tmp_path / "file.mlpackage"
    not_a_folder.write_bytes(b"hi")
    _one_line_exit_2(capsys, ["profile", str(not_a_folder), "--reps", "2"], "an .mlpackage is a folder")
    empty = tmp_path / "empty.mlmodel"
    empty.write_bytes(b"")
    _one_line_exit_2(capsys, ["profile", str(empty), "--reps", "2"], "holds no Core ML model")


def test_cli_profile_refuses_inputs_the_package_cannot_take(package, tmp_path, capsys):
    """Every engine failed on them in turn: one failed row per engine and exit 1, for what is bad input."""
    import numpy as np

    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    _one_line_exit_2(capsys, ["profile", str(package), "--input", f"x={tmp_path / 'wrong.npy'}"], "shape 3x5")
    _one_line_exit_2(capsys, ["profile", str(package), "--input", "y:2x4"], "no such input")
