"""Channel order of the space <-> depth ops against independent implementations.

* ``depth_to_space`` / ``space_to_depth`` follow TensorFlow's DCR order (input channel
  ``(i * block + j) * C_out + c`` feeds output pixel offset ``(i, j)`` of channel ``c``): coremltools maps
  TensorFlow's ``DepthToSpace`` / ``SpaceToDepth`` onto them unchanged (only NHWC <-> NCHW transposes), and its
  TensorFlow frontend tests compare the Core ML runtime with TensorFlow on inputs of several output channels.
  Reference: onnxruntime ``DepthToSpace`` mode ``DCR`` and ``SpaceToDepth`` (the same order).
* ``pixel_shuffle`` / ``pixel_unshuffle`` follow PyTorch's CRD order (input channel ``c * block^2 + i * block +
  j``): the PyTorch frontend maps ``nn.PixelShuffle`` / ``nn.PixelUnshuffle`` onto them. References: torch, and
  onnxruntime ``DepthToSpace`` mode ``CRD``.

Every case has several output channels: with one, DCR and CRD coincide and the order would go untested.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import convert
from tests.interp import milprog

RNG = np.random.default_rng(5)


def ort_run(op: str, x: np.ndarray, **attrs) -> np.ndarray:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("block, shape", [(2, (2, 12, 3, 4)), (3, (1, 18, 2, 3))])
def test_depth_to_space_is_dcr(block, shape):
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal(shape).astype(np.float32)

    def prog(x):
        return mb.depth_to_space(x=x, block_size=block)

    got = milprog.run(prog, {"x": x}, target="iOS15", op="depth_to_space")
    np.testing.assert_array_equal(got, ort_run("DepthToSpace", x, blocksize=block, mode="DCR"))
    # the case tells the orders apart
    assert not np.array_equal(got, ort_run("DepthToSpace", x, blocksize=block, mode="CRD"))


@pytest.mark.parametrize("block, shape", [(2, (2, 3, 4, 6)), (3, (1, 2, 6, 3))])
def test_space_to_depth_is_dcr(block, shape):
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal(shape).astype(np.float32)

    def prog(x):
        return mb.space_to_depth(x=x, block_size=block)

    got = milprog.run(prog, {"x": x}, target="iOS15", op="space_to_depth")
    np.testing.assert_array_equal(got, ort_run("SpaceToDepth", x, blocksize=block))


def test_depth_to_space_inverts_space_to_depth():
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)

    def prog(x):
        return mb.depth_to_space(x=mb.space_to_depth(x=x, block_size=2), block_size=2)

    np.testing.assert_array_equal(milprog.run(prog, {"x": x}, target="iOS15", op="depth_to_space"), x)


@pytest.mark.parametrize("block", [2, 3])
def test_pixel_shuffle_is_crd(block):
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal((2, 2 * block * block, 3, 2)).astype(np.float32)

    def prog(x):
        return mb.pixel_shuffle(x=x, upscale_factor=block)

    got = milprog.run(prog, {"x": x}, target="iOS15", op="pixel_shuffle")
    np.testing.assert_array_equal(got, ort_run("DepthToSpace", x, blocksize=block, mode="CRD"))
    np.testing.assert_array_equal(got, torch.nn.functional.pixel_shuffle(torch.from_numpy(x), block).numpy())


@pytest.mark.parametrize("block", [2, 3])
def test_pixel_unshuffle_is_crd(block):
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal((2, 3, 2 * block, 3 * block)).astype(np.float32)

    def prog(x):
        return mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(block))

    got = milprog.run(prog, {"x": x}, target="iOS16", op="pixel_unshuffle")
    want = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), block).numpy()
    np.testing.assert_array_equal(got, want)


class _SubPixel(torch.nn.Module):
    """ESPCN-style upsampler and its inverse: conv -> PixelShuffle, PixelUnshuffle -> conv."""

    def __init__(self, block: int):
        super().__init__()
        torch.manual_seed(0)
        self.down = torch.nn.PixelUnshuffle(block)
        self.mix = torch.nn.Conv2d(3 * block * block, 4 * block * block, 1)
        self.up = torch.nn.PixelShuffle(block)

    def forward(self, x):
        return self.up(self.mix(self.down(x)))


@pytest.mark.parametrize("target", ["iOS16", "iOS17"])
@pytest.mark.parametrize("block", [2, 3])
def test_converted_pixel_shuffle_and_unshuffle_match_torch(block, target):
    from devicefit import interp

    model = _SubPixel(block).eval()
    x = torch.randn(2, 3, 4 * block, 2 * block)
    program = interp.load(convert(model, x, target=target))
    assert program.op_counts.get("pixel_shuffle") and program.op_counts.get("pixel_unshuffle")
    (got,) = program.run({"x": x.numpy()}, strict=True).values()
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
