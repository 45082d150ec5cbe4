"""The interpreter's loader and loop on a small CNN: fp32 fidelity, fp16 emulation, intermediates, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError, KernelMissingError, ModelLoadError
from tests.helpers import convert, rel_error


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return torch.softmax(self.fc(y), -1)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    return model, x


def test_fp32_matches_torch(cnn):
    model, x = cnn
    prog = interp.load(convert(model, x, precision="fp32"))
    out = prog.run({"x": x.numpy()}, strict=True)
    (name,) = [o.name for o in prog.outputs]
    assert out[name].dtype == np.float32
    assert rel_error(out[name], model(x).detach().numpy()) <= 1e-5


def test_fp16_mode_rounds_every_fp16_value(cnn):
    model, x = cnn
    prog = interp.load(convert(model, x, precision="fp16"))
    out16 = prog.run({"x": x.numpy()}, precision="fp16", intermediates=True, strict=True)
    out32 = prog.run({"x": x.numpy()}, precision="fp32", intermediates=True, strict=True)
    name = prog.outputs[0].name
    assert out16[name].dtype == np.float16
    # every fp16-typed intermediate is exactly representable in float16
    declared = prog.value_dtypes
    fp16_values = [k for k, v in out16.items() if declared.get(k) == "fp16" and isinstance(v, np.ndarray)]
    assert len(fp16_values) >= 4
    for key in fp16_values:
        assert out16[key].dtype == np.float16, key  # intermediates follow their declared type, like outputs
        value = out16[key].astype(np.float32)
        assert np.array_equal(value.astype(np.float16).astype(np.float32), value), key
    # and fp16 emulation differs from fp32 arithmetic on the same program, but not by much
    assert 0 < rel_error(out16[name], out32[name]) < 1e-2


def test_intermediates_hold_every_op_output(cnn):
    model, x = cnn
    prog = interp.load(convert(model, x))
    out = prog.run({"x": x.numpy()}, intermediates=True)
    produced = {name for step in prog.plan.block.steps for name in step.outputs}
    assert produced <= set(out)


def test_wrong_input_name_shape_dtype(cnn):
    model, x = cnn
    prog = interp.load(convert(model, x))
    with pytest.raises(InputError, match="unknown input 'y'"):
        prog.run({"x": x.numpy(), "y": x.numpy()})
    with pytest.raises(InputError, match="missing input x"):
        prog.run({})
    with pytest.raises(InputError, match="has shape 1x3x8x8"):
        prog.run({"x": np.zeros((1, 3, 8, 8), np.float32)})
    with pytest.raises(InputError, match="dtype"):
        prog.run({"x": np.full((1, 3, 16, 16), "a")})


def test_missing_kernel_names_op_output_opset_and_home(cnn, monkeypatch):
    from devicefit.interp import registry

    model, x = cnn
    mlmodel = convert(model, x)
    registry._ensure_loaded()
    monkeypatch.setitem(registry._KERNELS, "relu", [])
    with pytest.raises(KernelMissingError, match=r"relu \(first output .*\).*iOS16.*interp/ops"):
        interp.load(mlmodel)


def test_bad_files(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        interp.load(tmp_path / "nope.mlpackage")
    bad = tmp_path / "garbage.mlmodel"
    bad.write_bytes(b"\x00\x01 this is not a protobuf" * 10)
    with pytest.raises(ModelLoadError):
        interp.load(bad)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelLoadError, match=r"not an \.mlpackage"):
        interp.load(tmp_path / "folder")


def _saved_package(tmp_path, cnn):
    import shutil

    model, x = cnn
    path = tmp_path / "m.mlpackage"
    convert(model, x).save(str(path))
    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(path, copy)
    weights = next(copy.rglob("weight.bin"))
    return copy, weights


def test_truncated_weight_file_is_a_clear_error(tmp_path, cnn):
    path, weights = _saved_package(tmp_path, cnn)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        interp.load(path)


def test_corrupted_weight_file_is_a_clear_error(tmp_path, cnn):
    path, weights = _saved_package(tmp_path, cnn)
    data = bytearray(weights.read_bytes())
    data[64:68] = b"\x00\x00\x00\x00"  # first blob's sentinel
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupted"):
        interp.load(path)


def test_truncated_model_spec_is_a_clear_error(tmp_path, cnn):
    path, _ = _saved_package(tmp_path, cnn)
    spec_file = next(path.rglob("model.mlmodel"))
    spec_file.write_bytes(spec_file.read_bytes()[:100])
    with pytest.raises(ModelLoadError):
        interp.load(path)


def test_neural_network_model_is_refused_with_advice(tmp_path, cnn):
    from devicefit._lazy import coremltools

    ct = coremltools()
    model, x = cnn
    traced = torch.jit.trace(model, x)
    nn_model = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape)], convert_to="neuralnetwork")
    with pytest.raises(ModelLoadError, match=r"not an ML Program.*mlprogram"):
        interp.load(nn_model)


@pytest.mark.parametrize("layout", ["RGB", "BGR"])
def test_image_input_preprocessing(layout):
    """ImageType inputs: the program applies scale and per-channel bias (mul / add ops) to the pixels."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    x = torch.rand(1, 3, 8, 8)
    bias = [-0.5, -0.4, -0.3]
    image = ct.ImageType(
        name="img", shape=x.shape, scale=1 / 255.0, bias=bias, color_layout=getattr(ct.colorlayout, layout)
    )
    prog = interp.load(convert(model, x, inputs=[image]))
    assert prog.inputs[0].kind == "image"
    assert {"mul", "add"} <= set(prog.op_counts)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8)).astype(np.float32)
    out = prog.run({"img": pixels})
    normalized = pixels / 255.0 + np.array(bias, np.float32).reshape(1, 3, 1, 1)
    expected = model(torch.from_numpy(normalized.astype(np.float32))).detach().numpy()
    assert rel_error(out[prog.outputs[0].name], expected) <= 1e-5


def test_results_do_not_alias_constants_or_inputs():
    """Writing into returned arrays must change neither the caller's inputs nor later runs."""
    from coremltools.converters.mil import Builder as mb

    from devicefit._lazy import coremltools

    ct = coremltools()
    c = np.arange(6, dtype=np.float32).reshape(2, 3)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.add(x=x, y=c, name="y"), mb.identity(x=x, name="w"), mb.reshape(x=c, shape=[3, 2], name="z")

    program = interp.load(ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17))
    x = np.ones((2, 3), np.float32)
    first = program.run({"x": x})
    for value in first.values():
        value[...] = 100
    assert np.array_equal(x, np.ones((2, 3), np.float32))
    again = program.run({"x": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(again["z"], c.reshape(3, 2))
    np.testing.assert_array_equal(again["y"], c + 1)


def test_two_dimensional_constant_attributes_load():
    """space_to_batch / batch_to_space take [2, 2] paddings / crops constants."""
    from coremltools.converters.mil import Builder as mb

    from devicefit._lazy import coremltools

    ct = coremltools()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.space_to_batch(x=x, block_shape=[2, 2], paddings=np.array([[0, 0], [0, 0]], np.int32))
        return mb.batch_to_space(x=y, block_shape=[2, 2], crops=np.array([[0, 0], [0, 0]], np.int32))

    program = interp.load(ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17))
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    (out,) = program.run({"x": x}).values()
    np.testing.assert_array_equal(out, x)  # batch_to_space undoes space_to_batch


def test_mlmodel_spec_file_with_inline_weights(tmp_path):
    """An ML Program stored as a bare .mlmodel spec (weights small enough to sit inline) runs."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).eval()
    x = torch.randn(1, 3)
    spec_file = tmp_path / "linear.mlmodel"
    spec_file.write_bytes(convert(model, x).get_spec().SerializeToString())
    prog = interp.load(spec_file)
    out = prog.run({"x": x.numpy()})
    assert rel_error(out[prog.outputs[0].name], model(x).detach().numpy()) <= 1e-6


def test_mlmodel_spec_file_without_its_weights_is_a_clear_error(tmp_path, cnn):
    model, x = cnn  # large enough for its weights to live in weight.bin
    spec_file = tmp_path / "cnn.mlmodel"
    spec_file.write_bytes(convert(model, x).get_spec().SerializeToString())
    with pytest.raises(ModelLoadError, match="no weights folder"):
        interp.load(spec_file)
