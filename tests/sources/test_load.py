"""load_source: every source kind, and one-line errors for bad specs."""

from __future__ import annotations

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
