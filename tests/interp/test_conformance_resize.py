"""Resize ops against onnxruntime's Resize (an independent implementation), each MIL sampling mode mapped
to the ONNX coordinate_transformation_mode that defines the same grid:

* DEFAULT (``i * in / out``, clamped)                -> ``asymmetric``
* STRICT_ALIGN_CORNERS / align_corners=True          -> ``align_corners``
* UNALIGN_CORNERS / half-pixel centres               -> ``half_pixel``
* nearest ``floor((i + 0.5) * in / out)``            -> ``tf_half_pixel_for_nn`` + ``floor``
* nearest ``floor(i * in / out)`` (upsample_nearest) -> ``asymmetric`` + ``floor``
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog

X = np.random.default_rng(2).standard_normal((2, 3, 5, 7)).astype(np.float32)


def ort_resize(x: np.ndarray, out_hw: tuple[int, int], mode: str, transform: str, nearest: str = "floor"):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [*x.shape[:2], *out_hw])
    node = helper.make_node(
        "Resize",
        ["x", "", "", "sizes"],
        ["y"],
        mode=mode,
        coordinate_transformation_mode=transform,
        nearest_mode=nearest,
    )
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[sizes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


SIZES = [(11, 16), (3, 4), (5, 10), (1, 1), (8, 5)]  # up, down, width only, to a point, mixed


@pytest.mark.parametrize("out_hw", SIZES)
@pytest.mark.parametrize(
    "sampling,transform",
    [("DEFAULT", "asymmetric"), ("STRICT_ALIGN_CORNERS", "align_corners"), ("UNALIGN_CORNERS", "half_pixel")],
)
def test_ios17_resize_linear_vs_onnxruntime(sampling, transform, out_hw):
    from coremltools.converters.mil import Builder as mb

    if sampling == "STRICT_ALIGN_CORNERS" and 1 in out_hw:
        pytest.skip("ONNX align_corners divides by out - 1")

    def prog(x):
        return mb.resize(
            x=x,
            shape=np.int32(out_hw),
            resized_dims=np.uint32(2),
            interpolation_mode="LINEAR",
            sampling_mode=sampling,
        )

    out = milprog.run(prog, {"x": X}, target="iOS17", op="resize")
    np.testing.assert_allclose(out, ort_resize(X, out_hw, "linear", transform), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("out_hw", SIZES)
def test_ios17_resize_nearest_default_vs_onnxruntime(out_hw):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.resize(
            x=x,
            shape=np.int32(out_hw),
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
            sampling_mode="DEFAULT",
        )

    out = milprog.run(prog, {"x": X}, target="iOS17", op="resize")
    np.testing.assert_array_equal(out, ort_resize(X, out_hw, "nearest", "tf_half_pixel_for_nn"))


@pytest.mark.parametrize("out_hw", SIZES)
def test_resize_bilinear_default_vs_onnxruntime(out_hw):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.resize_bilinear(
            x=x, target_size_height=out_hw[0], target_size_width=out_hw[1], sampling_mode="DEFAULT"
        )

    out = milprog.run(prog, {"x": X}, target="iOS16", op="resize_bilinear")
    np.testing.assert_allclose(out, ort_resize(X, out_hw, "linear", "asymmetric"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "align,half_pixel,transform",
    [(True, False, "align_corners"), (False, True, "half_pixel"), (False, False, "asymmetric")],
)
@pytest.mark.parametrize("scale", [(2.0, 3.0), (1.5, 2.5)])
def test_upsample_bilinear_vs_onnxruntime(align, half_pixel, transform, scale):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.upsample_bilinear(
            x=x,
            scale_factor_height=scale[0],
            scale_factor_width=scale[1],
            align_corners=align,
            half_pixel_centers=half_pixel,
        )

    out = milprog.run(prog, {"x": X}, target="iOS16", op="upsample_bilinear")
    out_hw = (int(5 * scale[0]), int(7 * scale[1]))
    np.testing.assert_allclose(out, ort_resize(X, out_hw, "linear", transform), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [(2.0, 3.0), (1.5, 2.5)])
def test_upsample_nearest_vs_onnxruntime(scale):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.upsample_nearest_neighbor(x=x, scale_factor_height=scale[0], scale_factor_width=scale[1])

    out = milprog.run(prog, {"x": X}, target="iOS16", op="upsample_nearest_neighbor")
    out_hw = (int(5 * scale[0]), int(7 * scale[1]))
    np.testing.assert_array_equal(out, ort_resize(X, out_hw, "nearest", "asymmetric"))
