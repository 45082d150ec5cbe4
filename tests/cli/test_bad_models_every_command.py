"""Every command given a model file of the wrong kind: exit 2 with one line saying what the file is and what
to pass instead; never a traceback, an internal error (3), a verdict (1) or success (0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.cli import main


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-models")
    net = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    torch.save(net, folder / "pickled.pt")
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 4)), str(folder / "script.pt"))
    (folder / "model.onnx").write_bytes(b"\x08\x07")  # what protobuf parses as an empty Core ML model
    np.save(folder / "data.npy", np.ones((1, 4), np.float32))
    (folder / "plain").mkdir()
    return folder


# what each file is, as the error must say it
KINDS = {
    "pickled.pt": "torch.save",
    "script.pt": "TorchScript",
    "model.onnx": "ONNX",
    "data.npy": "numpy arrays",
    "plain": "folder",
}


def _argv(command: str, model: str, tmp_path) -> list[str]:
    fast = ["--reps", "2", "--requests", "1", "--batch-sizes", "1", "--max-in-flight", "1"]
    return {
        "run": ["run", model],
        "lint": ["lint", model],
        "merge": ["merge", model, model, "-o", str(tmp_path / "m.mlpackage")],
        "profile": ["profile", model, "--input", "x:1x4", *fast],
        "check": ["check", model, "--samples", "2"],
        "compress": ["compress", model, "--budget", "cosine>=0.99", "--samples", "2"],
    }[command]


@pytest.mark.parametrize("command", ["run", "lint", "merge"])
@pytest.mark.parametrize("name", ["pickled.pt", "script.pt", "model.onnx", "data.npy", "plain"])
def test_core_ml_commands_name_what_the_file_is(bad, tmp_path, capsys, command, name):
    assert main(_argv(command, str(bad / name), tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"devicefit {command}: error: ")
    assert KINDS[name] in err
    if name != "data.npy":
        assert ".mlpackage" in err  # what to pass instead
    assert "Wire format" not in err and "empty model" not in err  # protobuf's view of a non-Core ML file


@pytest.mark.parametrize("command", ["profile", "check", "compress"])
@pytest.mark.parametrize("name", ["pickled.pt", "data.npy"])
def test_torch_commands_refuse_wrong_files_with_one_line(bad, tmp_path, capsys, command, name):
    assert main(_argv(command, str(bad / name), tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"devicefit {command}: error: ")


def test_a_model_file_given_as_input_data_says_so(bad, tmp_path, capsys):
    """--input x=model.pt said "an .npz archive with arrays (none) but none named 'x'"."""
    np.savez(tmp_path / "ok.npz", x=np.ones((1, 4), np.float32))
    from devicefit.sources.arrays import read_input_file

    assert read_input_file("x", tmp_path / "ok.npz", 1 << 20, "").shape == (1, 4)
    assert main(["profile", str(bad / "script.pt"), "--input", f"x={bad / 'pickled.pt'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "holding no .npy arrays (a model file?)" in err and "numpy.save" in err and len(err.splitlines()) == 1
    )


@pytest.mark.parametrize("command", ["check", "profile"])
def test_a_torchscript_forward_failing_on_the_inputs_names_torchs_reason(bad, tmp_path, capsys, command):
    """check quoted the first 300 characters of TorchScript's serialized traceback, which end before the error."""
    argv = _argv(command, str(bad / "script.pt"), tmp_path)
    argv = [a if a != "x:1x4" else "x:1x5" for a in argv] + (
        [] if command == "profile" else ["--input", "x:1x5"]
    )
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mat1 and mat2 shapes cannot be multiplied (1x5 and 4x2)" in err
    assert "TorchScript interpreter" not in err and "RuntimeError: RuntimeError" not in err


def test_a_missing_model_says_what_model_can_be(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model not found" in err and "check the path" in err and "FILE.py:FUNCTION" in err


@pytest.fixture(scope="module")
def torch_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-sources")
    (folder / "net.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),)\n"
    )
    (folder / "hf").mkdir()
    (folder / "hf" / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    return folder


@pytest.mark.parametrize("command", ["run", "lint", "merge"])
@pytest.mark.parametrize("spec", ["net.py:make", "net.py", "hf"])
def test_core_ml_commands_given_a_pytorch_model_say_to_convert_it_first(
    torch_sources, tmp_path, capsys, command, spec
):
    """``lint net.py:make`` said "model not found", ``lint net.py`` quoted protobuf ("Wire format was corrupt"),
    and a Hugging Face folder "not an .mlpackage": none said that a PyTorch model is converted first."""
    assert main(_argv(command, str(torch_sources / spec), tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"devicefit {command}: error: ")
    assert "PyTorch" in err and "devicefit check" in err and ".mlpackage" in err, err
    assert "not found" not in err and "Wire format" not in err


@pytest.mark.parametrize("spec", ["gone.py:make", "gone.py"])
def test_a_missing_python_file_is_not_called_a_pytorch_model(tmp_path, capsys, spec):
    assert main(["lint", str(tmp_path / spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model not found" in err and "PyTorch" not in err
