"""Conversion options land in the Core ML spec: targets, image inputs, flexible shapes, names, fp32 ops."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import interp
from devicefit.convert import ConvertOptions, FlexibleShape, ImageInputOptions, convert
from devicefit.errors import InputError, OutputExistsError
from devicefit.sources import load_source
from tests.convert.models import spec


@pytest.fixture(scope="module")
def classifier():
    return load_source(spec("classifier"))


@pytest.fixture(scope="module")
def seq():
    return load_source(spec("seq_model"))


def test_target_and_output_names(classifier):
    result = convert(classifier, ConvertOptions(target="iOS16", output_names=["probs", "logits"]))
    model_spec = result.mlmodel.get_spec()
    assert [o.name for o in model_spec.description.output] == ["probs", "logits"]
    assert model_spec.specificationVersion == 7  # iOS16
    assert interp.load(result.mlmodel).opset == 16


def test_default_output_names_follow_source(classifier):
    result = convert(classifier, ConvertOptions(precision="fp32"))
    assert [o.name for o in result.mlmodel.get_spec().description.output] == classifier.output_names
    assert classifier.output_names == ["output_0", "output_1"]


def test_image_input(classifier):
    opts = ConvertOptions(
        image_inputs={"image": ImageInputOptions(scale=1 / 255, bias=[-1, 0, 1], color_layout="BGR")}
    )
    result = convert(classifier, opts)
    model_input = result.mlmodel.get_spec().description.input[0]
    assert model_input.type.WhichOneof("Type") == "imageType"
    assert model_input.type.imageType.colorSpace == 30  # BGR
    assert (model_input.type.imageType.width, model_input.type.imageType.height) == (16, 16)
    ops = {op.op_type: op for op in interp.load(result.mlmodel).pymil_function.operations}
    assert ops["mul"].y.val == pytest.approx(1 / 255)
    assert ops["add"].y.val.ravel().tolist() == [-1.0, 0.0, 1.0]


def test_enumerated_shapes(seq):
    flex = FlexibleShape(enumerated=[(1, 4, 8), (1, 16, 8)])
    result = convert(seq, ConvertOptions(flexible={"x": flex}, frontend="torchscript"))
    array = result.mlmodel.get_spec().description.input[0].type.multiArrayType
    shapes = {tuple(s.shape) for s in array.enumeratedShapes.shapes}
    assert shapes == {(1, 10, 8), (1, 4, 8), (1, 16, 8)}


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_range_dim(seq, frontend):
    result = convert(
        seq, ConvertOptions(flexible={"x": FlexibleShape(ranges={1: (2, 64)})}, frontend=frontend)
    )
    ranges = result.mlmodel.get_spec().description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert [(r.lowerBound, r.upperBound) for r in ranges] == [(1, 1), (2, 64), (8, 8)]


def test_fp32_ops_stay_fp32(seq):
    def softmax_dtypes(precision, fp32_ops):
        result = convert(seq, ConvertOptions(precision=precision, fp32_ops=fp32_ops, frontend="torchscript"))
        prog = interp.load(result.mlmodel)
        types = prog.value_dtypes
        function = prog.pymil_function
        return {types[op.outputs[0].name] for op in function.operations if op.op_type == "softmax"}, types

    mixed, _ = softmax_dtypes("mixed", ["softmax"])
    plain, types = softmax_dtypes("fp16", [])
    assert mixed == {"fp32"}
    assert plain == {"fp16"}
    assert "fp16" in types.values()


def test_fp32_precision_has_no_fp16(seq):
    result = convert(seq, ConvertOptions(precision="fp32"))
    assert "fp16" not in interp.load(result.mlmodel).value_dtypes.values()


@pytest.mark.parametrize(
    "options, match",
    [
        (ConvertOptions(target="iOS12"), "target"),
        (ConvertOptions(precision="int8"), "precision"),
        (ConvertOptions(precision="mixed"), "fp32_ops"),
        (ConvertOptions(frontend="onnx"), "frontend"),
        (ConvertOptions(image_inputs={"nope": ImageInputOptions()}), "no input named 'nope'"),
        (
            ConvertOptions(image_inputs={"image": ImageInputOptions(color_layout="G", bias=[0])}),
            "image input",
        ),
        (ConvertOptions(flexible={"image": FlexibleShape()}), "exactly one"),
        (ConvertOptions(flexible={"image": FlexibleShape(ranges={7: (1, 2)})}), "out of range"),
        (ConvertOptions(output_names=["a"]), "2 output"),
    ],
)
def test_bad_options_raise_one_line_input_error(classifier, options, match):
    with pytest.raises(InputError, match=match) as info:
        convert(classifier, options)
    assert "\n" not in str(info.value)


def test_save_is_atomic_and_refuses_overwrite(seq, tmp_path):
    result = convert(seq, ConvertOptions(precision="fp32"))
    path = result.save(tmp_path / "m.mlpackage")
    assert path.is_dir() and (path / "Manifest.json").is_file()
    with pytest.raises(OutputExistsError):
        result.save(path)
    assert result.save(path, force=True) == path
    with pytest.raises(InputError, match=r"\.mlpackage"):
        result.save(tmp_path / "m.mlmodel")
    outputs = interp.load(str(path)).run(seq.example_inputs)
    np.testing.assert_allclose(outputs["output"], seq.reference(seq.example_inputs)["output"], atol=1e-5)
