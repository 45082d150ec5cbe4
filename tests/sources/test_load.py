"""load_source: every source kind, and one-line errors for bad specs."""

from __future__ import annotations

import io
import json
import pickle
import warnings
import zipfile
from fractions import Fraction

import numpy as np
import pytest
import torch

from devicefit.errors import InputError, ModelLoadError
from devicefit.sources import InputSpec, load_source, parse_input_arg

FACTORIES = """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
    def forward(self, x, bias):
        return self.lin(x) + bias

def make_model():
    return Net(), (torch.randn(2, 4), torch.zeros(3))

def as_dict():
    return {"module": Net(), "inputs": {"x": torch.randn(1, 4), "bias": torch.ones(3)}, "labels": torch.tensor([1])}

def boom():
    raise RuntimeError("no weights\\nfound")

def wrong():
    return 42

NOT_CALLABLE = 3
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(FACTORIES)
    return path


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ids:1x128:int32", InputSpec("ids", (1, 128), "int32")),
        ("x:1x3x224x224", InputSpec("x", (1, 3, 224, 224), "float32")),
        ("mask:2x8:bool", InputSpec("mask", (2, 8), "bool")),
        ("h:4:fp16", InputSpec("h", (4,), "float16")),
    ],
)
def test_parse_input_arg(text, expected):
    assert parse_input_arg(text) == expected


@pytest.mark.parametrize("text", ["x", "x:1xx3", "x:1x3:complex64", "x:0x3", ":1x3", "x:-1x3"])
def test_parse_input_arg_rejects(text):
    with pytest.raises(InputError) as info:
        parse_input_arg(text)
    assert "\n" not in str(info.value)


def test_python_factory_tuple(model_file):
    source = load_source(str(model_file))
    assert source.kind == "python"
    assert [s.name for s in source.input_specs] == ["x", "bias"]
    assert source.input_specs[0] == InputSpec("x", (2, 4), "float32")
    assert source.output_names == ["output"]
    out = source.reference(source.example_inputs)["output"]
    expected = source.module(*[torch.from_numpy(a) for a in source.example_inputs.values()]).detach().numpy()
    np.testing.assert_allclose(out, expected)


def test_python_factory_dict_with_labels_and_input_override(model_file):
    source = load_source(f"{model_file}:as_dict")
    assert source.call_by_keyword
    assert source.labels is not None and source.labels.tolist() == [1]
    override = load_source(
        f"{model_file}:as_dict", inputs=[parse_input_arg("x:5x4"), parse_input_arg("bias:3")]
    )
    assert override.example_inputs["x"].shape == (5, 4)
    assert override.reference(override.example_inputs)["output"].shape == (5, 3)


@pytest.mark.parametrize(
    "suffix, match",
    [
        (":missing", "has no factory 'missing'.*make_model"),
        (":boom", r"raised RuntimeError: no weights found"),
        (":wrong", "returned int"),
        (":NOT_CALLABLE", "not callable"),
    ],
)
def test_python_factory_errors(model_file, suffix, match):
    with pytest.raises(ModelLoadError, match=match) as info:
        load_source(f"{model_file}{suffix}")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_source(str(tmp_path / "nope.pt2"))


def test_wrong_input_count(model_file):
    with pytest.raises(InputError, match="takes 2 input"):
        load_source(str(model_file), inputs=[parse_input_arg("x:1x4")])


def test_exported_program(tmp_path):
    net = torch.nn.Linear(4, 2).eval()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(net, (torch.randn(3, 4),)), str(path))
    source = load_source(str(path))
    assert source.kind == "exported" and source.exported is not None
    assert source.input_specs[0].shape == (3, 4)
    x = source.example_inputs[source.input_specs[0].name]
    np.testing.assert_allclose(
        source.reference(source.example_inputs)["output"],
        net(torch.from_numpy(x)).detach().numpy(),
        atol=1e-6,
    )


def _pt2_with(tmp_path, edit, extra=()):
    """A real .pt2 of a Linear, copied entry by entry through ``edit(name, data) -> data``, plus ``extra``."""
    good = tmp_path / "good.pt2"
    net = torch.nn.Linear(3, 2).eval()
    net.register_buffer("offset", torch.ones(2))
    torch.export.save(torch.export.export(net, (torch.randn(1, 3),)), str(good))
    crafted = tmp_path / "crafted.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(crafted, "w") as dst:
        prefix = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            dst.writestr(info, edit(info.filename, src.read(info)))
        for name, data in extra:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a duplicate name is the point of one case
                dst.writestr(f"{prefix}/{name}", data)
    return good, crafted


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _set_config(name, data, suffix, fqn, **fields):
    if not name.endswith(suffix):
        return data
    config = json.loads(data)
    config["config"].setdefault(fqn, {"is_param": False, "tensor_meta": None}).update(fields)
    return json.dumps(config).encode()


def _pickled_weight(name, data):
    # A harmless payload: what matters is that torch would read it with torch.load(weights_only=False).
    if name.endswith("data/weights/weight_0"):
        return _saved(torch.nn.Parameter(torch.zeros(2, 3)))
    return _set_config(name, data, "weights_config.json", "weight", use_pickle=True)


def _pickled_weight_in_a_duplicate(name, data):
    return _set_config(name, data, "weights_config.json", "weight", use_pickle=True)


@pytest.mark.parametrize(
    ("edit", "extra", "reason"),
    [
        (_pickled_weight, (), r"'weight' is stored as a Python pickle \(.*sets use_pickle\)"),
        (
            lambda n, d: _set_config(
                n, d, "constants_config.json", "obj", path_name="opaque_obj_0", use_pickle=False
            ),
            [("data/constants/opaque_obj_0", pickle.dumps(Fraction(1, 2)))],
            "constant 'obj' is a pickled Python object",
        ),
        (
            lambda n, d: _saved(((Fraction(1, 2),), {})) if n.endswith("sample_inputs/model.pt") else d,
            (),
            r"sample_inputs/model.pt is not a plain tensor file",
        ),
        (
            # A clean-looking second copy of the config: zipfile.read(name) would return only that one.
            _pickled_weight_in_a_duplicate,
            [("data/weights/model_weights_config.json", b'{"config": {}}')],
            r"'weight' is stored as a Python pickle",
        ),
    ],
    ids=["use_pickle-weight", "opaque-constant", "pickled-sample-inputs", "duplicate-config"],
)
def test_exported_program_with_pickled_entries_refused_before_loading(
    tmp_path, monkeypatch, edit, extra, reason
):
    good, crafted = _pt2_with(tmp_path, edit, extra)
    assert load_source(str(good)).kind == "exported"

    def must_not_load(*args, **kwargs):
        raise AssertionError("torch.export.load reached: it would unpickle the crafted entry")

    monkeypatch.setattr(torch.export, "load", must_not_load)
    with pytest.raises(ModelLoadError, match=reason) as info:
        load_source(str(crafted))
    message = str(info.value)
    assert "\n" not in message and "arbitrary code" in message and "--trust-pickle" in message


def test_exported_program_with_pickled_weight_loads_when_trusted(tmp_path):
    _, crafted = _pt2_with(tmp_path, _pickled_weight)
    source = load_source(str(crafted), trust_pickle=True)
    assert source.kind == "exported"
    np.testing.assert_array_equal(source.exported.state_dict["weight"].detach().numpy(), np.zeros((2, 3)))


def test_torchscript_needs_inputs_then_loads(tmp_path):
    net = torch.nn.Linear(4, 2).eval()
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 4)), str(path))
    with pytest.raises(InputError, match="--input"):
        load_source(str(path))
    source = load_source(str(path), inputs=[parse_input_arg("x:2x4")])
    assert source.kind == "torchscript"
    assert source.reference(source.example_inputs)["output"].shape == (2, 2)


def test_pickled_module_refused_without_trust(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(torch.nn.Linear(4, 2), str(path))
    with pytest.raises(ModelLoadError, match=r"arbitrary code.*--trust-pickle") as info:
        load_source(str(path), inputs=[parse_input_arg("x:1x4")])
    assert "\n" not in str(info.value)
    source = load_source(str(path), inputs=[parse_input_arg("x:1x4")], trust_pickle=True)
    assert source.kind == "pickle"
    assert source.reference(source.example_inputs)["output"].shape == (1, 2)


def test_state_dict_explains_factory(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), str(path))
    with pytest.raises(ModelLoadError, match=r"only weights.*factory"):
        load_source(str(path), trust_pickle=True)


def test_unknown_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model file"):
        load_source(str(path))


def test_hugging_face_folder(tmp_path):
    from transformers import BertModel

    from tests.convert.models import tiny_bert_config

    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "bert")
    source = load_source(str(tmp_path / "bert"))
    assert source.kind == "hf"
    assert [s.describe() for s in source.input_specs] == ["input_ids:1x64:int32", "attention_mask:1x64:int32"]
    assert source.example_inputs["input_ids"].max() < 100
    assert source.output_names[0] == "last_hidden_state"
    assert source.reference(source.example_inputs)["last_hidden_state"].shape == (1, 64, 32)
    custom = load_source(
        str(tmp_path / "bert"),
        inputs=[parse_input_arg("input_ids:1x8:int32"), parse_input_arg("attention_mask:1x8:int32")],
    )
    assert custom.reference(custom.example_inputs)["last_hidden_state"].shape == (1, 8, 32)


def test_coreml_package(tmp_path):
    from devicefit.convert import ConvertOptions, convert

    net_file = tmp_path / "net.py"
    net_file.write_text(
        "import torch\ndef make_model():\n    return torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),)\n"
    )
    package = convert(load_source(str(net_file)), ConvertOptions(precision="fp32")).save(
        tmp_path / "m.mlpackage"
    )
    source = load_source(str(package))
    assert source.kind == "coreml" and source.module is None and source.mlmodel is not None
    assert source.input_specs == [InputSpec("input", (1, 4), "float32")]  # Linear.forward(input)
    assert source.output_names == ["output"]
    with pytest.raises(InputError, match="no PyTorch reference"):
        source.reference(source.example_inputs)
