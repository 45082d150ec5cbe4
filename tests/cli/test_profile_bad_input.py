"""`devicefit profile`: a model or inputs no engine can use is bad input (exit 2, one line), never a failed
table row with exit 1 (or 0), and generated inputs are bounded in bytes like everywhere else."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from devicefit.cli import main

FAST = ["--reps", "3", "--requests", "2", "--batch-sizes", "1", "--max-in-flight", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile-bad")
    net = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    torch.save(net, folder / "pickled.pt")  # the nn.Module pickled: not TorchScript
    torch.save(net.state_dict(), folder / "weights.pt")
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 4)), str(folder / "linear.pt"))
    (folder / "garbage.pt").write_bytes(b"not a model at all")
    (folder / "garbage.onnx").write_bytes(b"not a model at all")
    np.save(folder / "data.npy", np.ones((1, 4), np.float32))
    (folder / "hf").mkdir()
    (folder / "hf" / "config.json").write_text("{}")
    return folder


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert captured.out == ""  # nothing was measured: no table
    return err


@pytest.mark.parametrize(
    ("name", "engine", "expected"),
    [
        ("pickled.pt", "torch", "saved with torch.save"),
        ("pickled.pt", "onnxruntime", "saved with torch.save"),
        ("weights.pt", "auto", "saved with torch.save"),
        ("garbage.pt", "auto", "not a TorchScript archive"),
        ("garbage.onnx", "auto", "valid ONNX model"),
        ("data.npy", "torch", "numpy arrays (data), not a model"),
        ("hf", "torch", "is a folder, not a Core ML package"),
    ],
)
def test_an_unreadable_model_is_exit_2_with_one_line(files, tmp_path, capsys, name, engine, expected):
    report = tmp_path / "p.json"
    argv = ["profile", str(files / name), "-e", engine, "--input", "x:1x4", *FAST, "--json", str(report)]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert expected in err and (
        "profile takes" in err or "check the file is a valid ONNX" in err
    )  # what to do
    assert "PytorchStreamReader" not in err  # torch's internal wording is not what the user needs
    assert not report.exists()  # bad input writes no report


def test_torchscript_without_input_shapes_is_exit_2(files, capsys):
    assert main(["profile", str(files / "linear.pt"), *FAST]) == 2
    err = _one_line_error(capsys)
    assert "no declared shape" in err and "--input input:DIMxDIM" in err


def test_inputs_the_forward_rejects_are_exit_2_naming_torchs_reason(files, capsys):
    assert main(["profile", str(files / "linear.pt"), "--input", "x:1x5", *FAST]) == 2
    err = _one_line_error(capsys)
    assert "x:1x5:float32" in err and "mat1 and mat2 shapes cannot be multiplied" in err
    assert "TorchScript interpreter" not in err


def test_an_engine_this_host_lacks_is_refused_before_timing(files, capsys, monkeypatch):
    from devicefit.engines import engine_class
    from devicefit.engines.base import Availability

    monkeypatch.setattr(
        engine_class("onnxruntime"),
        "availability",
        classmethod(lambda cls: Availability("onnxruntime", False, "gone")),
    )
    assert main(["profile", str(files / "linear.pt"), "-e", "onnxruntime", "--input", "x:1x4", *FAST]) == 2
    err = _one_line_error(capsys)
    assert "engine 'onnxruntime' is not available on this host: gone" in err and "torch" in err


def test_a_failed_row_beside_measured_ones_is_exit_2_after_the_table(files, tmp_path, capsys):
    report = tmp_path / "p.json"
    argv = ["profile", str(files / "linear.pt"), "-e", "torch", "-e", "onnxruntime", "--precision", "fp16",
            "--input", "x:1x4", *FAST, "--json", str(report)]  # fmt: skip
    assert main(argv) == 2  # onnxruntime has no fp16 mode: that row is not a measurement
    captured = capsys.readouterr()
    assert "torch · all · fp16" in captured.out  # the measured row is shown and written
    rows = {p["engine"]: p for p in json.loads(report.read_text())["profiles"]}
    assert rows["torch"]["error"] is None and rows["onnxruntime"]["error_type"] == "InputError"
    (line,) = [x for x in captured.err.splitlines() if x.startswith("devicefit profile: error:")]
    assert "onnxruntime · all · fp16" in line and "precision" in line


def test_declared_inputs_are_bounded_in_bytes_of_their_dtype(files, capsys):
    assert main(["profile", str(files / "linear.pt"), "--input", "x:8000x8000x1:int64", *FAST]) == 2
    err = _one_line_error(capsys)  # 64 M elements, 488 MiB in int64
    assert "over the 256 MiB limit for generated inputs" in err and "int64" in err


def test_inputs_generated_from_an_onnx_models_declared_shapes_are_bounded(tmp_path, capsys):
    """Without --input, the harness generated an ONNX model's inputs at their declared shapes, unchecked."""
    import onnx
    from onnx import TensorProto, helper

    big = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 6000, 6000])  # 275 MiB of int64
    out = helper.make_tensor_value_info("out", TensorProto.INT64, [1, 6000, 6000])
    graph = helper.make_graph([helper.make_node("Identity", ["ids"], ["out"])], "big", [big], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "big.onnx")
    assert main(["profile", str(tmp_path / "big.onnx"), *FAST]) == 2
    err = _one_line_error(capsys)
    assert "'ids' is declared 1x6000x6000 int64" in err and "256 MiB limit" in err


def test_many_inputs_are_bounded_together(files, capsys, monkeypatch):
    monkeypatch.setenv("DEVICEFIT_MAX_DATA_BYTES", str(3 << 20))
    argv = ["profile", str(files / "linear.pt"), *FAST]
    for i in range(4):  # 1 MiB each: every one under the per-input limit, 4 MiB together
        argv += ["--input", f"x{i}:256x1024:float32"]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "4 generated inputs" in err and "DEVICEFIT_MAX_DATA_BYTES" in err


class _OneSampleOnly(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, 2, 2).sum(0)  # a fixed batch of 1: stacking requests on axis 0 breaks it


def test_a_forward_that_rejects_stacked_batches_is_exit_2_not_an_internal_error(tmp_path, capsys):
    """--batch-sizes 4 stacks 4 requests on axis 0; a forward with a fixed batch raised "internal error" (3)."""
    path = tmp_path / "one.pt"
    torch.jit.save(torch.jit.trace(_OneSampleOnly(), torch.ones(1, 4)), str(path))
    argv = [
        "profile",
        str(path),
        "--input",
        "x:1x4",
        "--reps",
        "2",
        "--requests",
        "4",
        "--max-in-flight",
        "1",
    ]
    assert main([*argv, "--batch-sizes", "4"]) == 2
    err = _one_line_error(capsys)
    assert "batch of 4" in err and "--batch-sizes 1" in err and "shape '[1, 2, 2]' is invalid" in err
    assert main([*argv, "--batch-sizes", "1"]) == 0


class _ThreeInputs(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return a + b + c


@pytest.mark.parametrize("command", ["run", "profile"])
def test_a_packages_inputs_are_bounded_together(tmp_path, capsys, monkeypatch, command):
    """Each generated input was bounded alone: a model with many inputs just under the limit took their sum."""
    from tests.helpers import convert

    x = torch.zeros(1, 256, 1024)  # 1 MiB of float32 each
    convert(_ThreeInputs().eval(), (x, x, x), target="iOS17").save(str(tmp_path / "three.mlpackage"))
    monkeypatch.setenv("DEVICEFIT_MAX_DATA_BYTES", str(2 << 20))
    argv = [command, str(tmp_path / "three.mlpackage")] + (FAST if command == "profile" else [])
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "3 generated inputs" in err and "3 MiB together" in err and "DEVICEFIT_MAX_DATA_BYTES" in err


def test_several_causes_are_each_named_on_one_line():
    from types import SimpleNamespace

    from devicefit.cli.cmd_profile import failure
    from devicefit.profile.harness import EngineProfile

    rows = [EngineProfile("torch", "all", "fp16", error="bad a"), EngineProfile("onnxruntime", "all", "fp16",
            error="bad b\nmore")]  # fmt: skip
    text = str(failure(SimpleNamespace(model="m.pt", profiles=rows)))
    assert (
        text
        == "could not profile m.pt on any engine: torch · all · fp16: bad a | onnxruntime · all · fp16: bad b"
    )
    assert failure(SimpleNamespace(model="m.pt", profiles=[EngineProfile("torch", "all", "fp32")])) is None


def test_the_onnxruntime_fp16_refusal_speaks_cli_flags(files, tmp_path, capsys):
    # the engine's message said "use precision='fp32', or engine='interp'": library words on the command line
    argv = [
        "profile",
        str(files / "linear.pt"),
        "-e",
        "onnxruntime",
        "--precision",
        "fp16",
        "--input",
        "x:1x4",
    ]
    assert main([*argv, *FAST, "--json", str(tmp_path / "p.json")]) == 2
    err = _one_line_error(capsys)
    assert "--precision fp32" in err and "--engine interp" in err, err
    assert "precision='" not in err and "engine='" not in err, err


def test_a_partly_measured_profile_speaks_cli_flags_in_its_rows_too(files, tmp_path, capsys):
    # torch measures fp16, onnxruntime refuses it: the refused row's text in the table and the JSON said
    # "precision='fp32'" (library words) while the last stderr line spoke flags
    argv = ["profile", str(files / "linear.pt"), "-e", "torch", "-e", "onnxruntime", "--precision", "fp16"]
    out = tmp_path / "p.json"
    assert main([*argv, "--input", "x:1x4", *FAST, "--json", str(out)]) == 2
    captured = capsys.readouterr()
    rows = [p for p in json.loads(out.read_text())["profiles"] if p.get("error")]
    assert rows and all("precision='" not in p["error"] for p in rows), rows
    assert any("--precision fp32" in p["error"] for p in rows), rows
    assert "precision='" not in captured.out + captured.err
