"""No code from a model file runs without consent: every code-carrying route, with a payload that writes a marker.

Each payload is live: where it is safe to do so the test also loads it with ``trust_code=True`` and sees the
marker appear, so a refusal that stops happening would show as a marker, not as a silently passing test.
"""

from __future__ import annotations

import io
import json
import pathlib
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from devicefit.errors import ModelLoadError
from devicefit.sources import load_source, parse_input_arg
from tests.helpers import custom_class_torchscript

PAYLOAD_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void devicefit_marker(void) {
  FILE *f = fopen("%s", "w");
  if (f) { fputs("code ran", f); fclose(f); }
}
"""


class _Touch:
    """Unpickling this object creates ``path``: what a hostile pickle would do, minus the harm."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists() or path.read_text() in ("", "code ran")  # only our payloads write it


def _good_pt2(tmp_path) -> pathlib.Path:
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(3, 2).eval(), (torch.randn(1, 3),)), str(good))
    return good


def _pt2_with(tmp_path, edit=lambda name, data: data, extra=()) -> pathlib.Path:
    good = _good_pt2(tmp_path)
    crafted = tmp_path / "crafted.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(crafted, "w") as dst:
        prefix = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            dst.writestr(info, edit(info.filename, src.read(info)))
        for name, data in extra:
            dst.writestr(f"{prefix}/{name}", data)
    return crafted


def _shared_library(tmp_path, marker) -> bytes:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the payload library")
    source = tmp_path / "payload.c"
    source.write_text(PAYLOAD_C % marker)
    lib = tmp_path / "payload.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    return lib.read_bytes()


def _refused(path, match, **kwargs) -> str:
    with pytest.raises(ModelLoadError, match=match) as info:
        load_source(str(path), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert "arbitrary code" in message and "--trust-code" in message
    return message


def test_aoti_shared_library_is_refused_and_would_run(tmp_path, marker):
    library = _shared_library(tmp_path, marker)
    # The file names torch's AOTIModelPackageLoader looks for: it dlopens *.wrapper.so on load.
    crafted = _pt2_with(
        tmp_path,
        extra=[
            ("data/aotinductor/model/x.wrapper.so", library),
            ("data/aotinductor/model/x.wrapper_metadata.json", b'{"AOTI_DEVICE_KEY": "cpu"}'),
        ],
    )
    _refused(crafted, r"data/aotinductor/model/x.wrapper.* AOTInductor compiled artifact")
    assert not marker.exists()
    # With consent torch dlopens it: the constructor runs (then the load fails, one line).
    with pytest.raises(ModelLoadError) as info:
        load_source(str(crafted), trust_code=True)
    assert "\n" not in str(info.value)
    assert marker.exists()


def test_aoti_cpp_source_is_refused(tmp_path, marker):
    crafted = _pt2_with(
        tmp_path, extra=[("data/aotinductor/model/x.wrapper.cpp", (PAYLOAD_C % marker).encode())]
    )
    _refused(crafted, r"x.wrapper.cpp is an AOTInductor compiled artifact")
    assert not marker.exists()


@pytest.mark.parametrize(
    "entry",
    ["extra/helper.so", "data/mtia/kernels.dylib", "extra/notes.txt"],
    ids=["so", "dylib", "elf-by-content"],
)
def test_native_code_anywhere_in_a_pt2_is_refused(tmp_path, marker, entry):
    library = _shared_library(tmp_path, marker)
    crafted = _pt2_with(tmp_path, extra=[(entry, library)])
    _refused(crafted, "native code|executable or shared library")
    assert not marker.exists()


def _touching_weight(marker):
    def edit(name, data):
        if name.endswith("data/weights/weight_0"):
            return _saved(_Touch(marker))
        if name.endswith("weights_config.json"):
            config = json.loads(data)
            config["config"]["weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        return data

    return edit


def test_pt2_pickled_weight_is_refused_and_would_run(tmp_path, marker):
    crafted = _pt2_with(tmp_path, _touching_weight(marker))
    _refused(crafted, r"'weight' is stored as a Python pickle")
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the payload is not a tensor, so loading fails after it ran
        load_source(str(crafted), trust_code=True)
    assert marker.exists()


def test_pt2_pickled_sample_inputs_are_refused(tmp_path, marker):
    crafted = _pt2_with(
        tmp_path, lambda n, d: _saved(((_Touch(marker),), {})) if n.endswith("sample_inputs/model.pt") else d
    )
    _refused(crafted, r"sample_inputs/model.pt is not a plain tensor file")
    assert not marker.exists()


def test_pickled_module_is_refused_and_would_run(tmp_path, marker):
    path = tmp_path / "m.pt"
    net = torch.nn.Linear(4, 2)
    net.payload = _Touch(marker)  # unpickled with the module
    torch.save(net, str(path))
    message = _refused(path, "pickled nn.Module", inputs=[parse_input_arg("x:1x4")])
    assert "--trust-pickle also works" in message
    assert not marker.exists()
    source = load_source(str(path), inputs=[parse_input_arg("x:1x4")], trust_pickle=True)  # the old name
    assert source.kind == "pickle" and marker.exists()


def test_torchscript_custom_class_is_refused(tmp_path, marker, monkeypatch):
    crafted = custom_class_torchscript(tmp_path)
    plain = tmp_path / "plain.pt"  # the helper's unmodified original
    # A registered custom class's __setstate__ is native code run by torch.jit.load: stand in for it.
    real_load = torch.jit.load

    def load_running_native_code(*args, **kwargs):
        marker.write_text("code ran")
        return real_load(str(plain), map_location="cpu")

    monkeypatch.setattr(torch.jit, "load", load_running_native_code)
    _refused(crafted, r"custom class torch.classes.devicefit_test.Marker", inputs=[parse_input_arg("x:1x4")])
    assert not marker.exists()
    assert load_source(str(plain), inputs=[parse_input_arg("x:1x4")]).kind == "torchscript"
    assert marker.exists()  # plain TorchScript needs no consent (the stand-in ran)


def _corrupt_pt2(tmp_path) -> pathlib.Path:
    """A .pt2 missing a weight record: torch logs a whole traceback as a warning, then raises."""
    corrupt = tmp_path / "corrupt.pt2"
    with zipfile.ZipFile(_good_pt2(tmp_path)) as src, zipfile.ZipFile(corrupt, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("data/weights/weight_0"):
                dst.writestr(info, src.read(info))
    return corrupt


def test_corrupt_pt2_is_one_line_without_torch_logging(tmp_path, capfd):
    corrupt = _corrupt_pt2(tmp_path)
    capfd.readouterr()
    with pytest.raises(ModelLoadError, match=r"cannot load ExportedProgram.*weight_0") as info:
        load_source(str(corrupt))
    assert "\n" not in str(info.value) and "warnings above" not in str(info.value)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_corrupt_pt2_from_the_cli_exits_2_with_one_line(tmp_path, capfd):
    from devicefit.cli import main

    corrupt = _corrupt_pt2(tmp_path)
    capfd.readouterr()
    assert main(["check", str(corrupt), "-o", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt.pt2" in err


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_numpy_data_given_as_model_is_called_data(tmp_path, kind):
    path = tmp_path / f"inputs.{kind}"
    if kind == "npz":
        np.savez(path, x=np.zeros((1, 4), np.float32))
    else:
        np.save(path, np.zeros((1, 4), np.float32))
    with pytest.raises(ModelLoadError, match=r"is data \((a )?numpy array.*pass it as --data") as info:
        load_source(str(path))
    assert "pickle" not in str(info.value)


def test_hugging_face_folder_without_weights_is_an_error(tmp_path, capfd):
    from safetensors.torch import save_file
    from transformers import BertModel

    from tests.convert.models import tiny_bert_config

    folder = tmp_path / "bert"
    BertModel(tiny_bert_config()).save_pretrained(folder)
    save_file({}, str(folder / "model.safetensors"))
    capfd.readouterr()
    with pytest.raises(
        ModelLoadError, match=r"do not cover the model: \d+ parameter\(s\) would be random"
    ) as info:
        load_source(str(folder))
    assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # transformers' load report is not printed on top of the error


def test_hugging_face_folder_missing_some_weights_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import BertModel

    from tests.convert.models import tiny_bert_config

    folder = tmp_path / "bert"
    BertModel(tiny_bert_config()).save_pretrained(folder)
    weights = load_file(str(folder / "model.safetensors"))
    dropped = sorted(k for k in weights if k.startswith("pooler."))
    save_file({k: v for k, v in weights.items() if k not in dropped}, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"pooler\.dense\.bias"):
        load_source(str(folder))


def test_hugging_face_config_declaring_a_huge_model_is_refused_before_allocating(tmp_path):
    """A config.json of a few bytes declared a 33 GB model; transformers allocated (and initialised) it all
    before noticing that the weight files hold none of it."""
    import json

    from safetensors.numpy import save_file

    folder = tmp_path / "crafted"
    folder.mkdir()
    config = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 4096, "vocab_size": 2_000_000}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"unrelated": np.zeros((2, 2), np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"declares a model of at least [\d,]+ parameters.*hold only"):
        load_source(str(folder))


def test_hugging_face_config_declaring_a_million_layers_is_refused_without_building_them(tmp_path):
    """num_hidden_layers: 1000000 in a config of a few bytes: counting its parameters on the meta device built
    every layer first (24 ms each: hours); the count now stops as soon as it is over what the files hold."""
    from safetensors.numpy import save_file

    folder = tmp_path / "deep"
    folder.mkdir()
    config = {"model_type": "gpt2", "n_layer": 1_000_000, "n_head": 2, "n_embd": 8, "vocab_size": 50}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"unrelated": np.zeros((2, 2), np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=r"over 2,000 submodules \(n_layer=1000000.*hold only"):
        load_source(str(folder))


def test_hugging_face_weights_in_a_sparse_file_do_not_count_as_stored(tmp_path):
    """A model.safetensors truncated up to 20 GB (holes, 16 KB on disk) let a config declaring a 2-billion
    parameter model through the size check, and transformers then allocated 8 GB of random weights."""
    import os

    from safetensors.numpy import save_file

    folder = tmp_path / "sparse"
    folder.mkdir()
    config = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 4096, "vocab_size": 200_000}
    (folder / "config.json").write_text(json.dumps(config))
    weights = folder / "model.safetensors"
    save_file({"unrelated": np.zeros((2, 2), np.float32)}, str(weights))
    os.truncate(weights, 20 << 30)
    if os.stat(weights).st_blocks * 512 * 8 >= os.stat(weights).st_size:
        pytest.skip("this filesystem does not make sparse files")
    with pytest.raises(ModelLoadError, match=r"declares a model of at least [\d,]+ parameters.*hold only"):
        load_source(str(folder))
