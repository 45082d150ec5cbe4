"""Small torch models converted by coremltools, and MIL-built programs of ops torch never emits, run end to
end through the interpreter against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from tests.helpers import convert, rel_error
from tests.interp import milprog
from tests.interp.nn_helpers import TOL, close, rand


# ----------------------------------------------------------------------------------------- end to end
class Interp(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return F.interpolate(x, **self.kwargs)


class SDPA(torch.nn.Module):
    def __init__(self, mask: torch.Tensor | None = None):
        super().__init__()
        self.mask = mask

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)


def _bn():
    m = torch.nn.BatchNorm2d(4)
    m.running_mean.uniform_(-1, 1)
    m.running_var.uniform_(0.5, 2)
    m.weight.data.uniform_(0.5, 1.5)
    m.bias.data.uniform_(-1, 1)
    return m


X = (1, 4, 10, 11)
MODELS = {
    "batchnorm": (_bn, X),
    "instancenorm": (lambda: torch.nn.InstanceNorm2d(4, affine=True), X),
    "groupnorm": (lambda: torch.nn.GroupNorm(2, 4), X),
    "layernorm": (lambda: torch.nn.LayerNorm([10, 11]), X),
    "avgpool_ceil_nopad": (lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), X),
    "avgpool_ceil_pad": (lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True), X),
    "avgpool1d": (lambda: torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False), (1, 3, 12)),
    "maxpool_ceil": (lambda: torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), X),
    "maxpool3d": (lambda: torch.nn.MaxPool3d(2, (1, 2, 2)), (1, 2, 4, 6, 6)),
    "adaptive_avg": (lambda: torch.nn.AdaptiveAvgPool2d((5, 1)), X),
    "bilinear_ac": (lambda: Interp(size=(17, 9), mode="bilinear", align_corners=True), X),
    "bilinear": (lambda: Interp(size=(17, 9), mode="bilinear", align_corners=False), X),
    "bilinear_x2": (lambda: Interp(scale_factor=2, mode="bilinear", align_corners=False), X),
    "nearest_x2": (lambda: Interp(scale_factor=2, mode="nearest"), X),
    "nearest_size": (lambda: Interp(size=(15, 22), mode="nearest"), X),
    "upsample": (lambda: torch.nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True), X),
    "conv_transpose": (lambda: torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), X),
    "conv1d": (lambda: torch.nn.Conv1d(3, 5, 3, stride=2, padding=2, dilation=2), (1, 3, 16)),
    "conv3d": (lambda: torch.nn.Conv3d(2, 3, (2, 3, 3), padding=(1, 0, 1)), (1, 2, 4, 6, 6)),
    "depthwise_dilated": (lambda: torch.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4), X),
}
FAST_IOS18 = ["layernorm", "avgpool_ceil_nopad", "conv_transpose"]


def _run_e2e(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], target: str) -> None:
    model = model.eval()
    mlmodel = convert(model, inputs, target=target)
    prog = interp.load(mlmodel)
    feeds = {spec.name: t.numpy() for spec, t in zip(prog.inputs, inputs)}
    out = prog.run(feeds, strict=True)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    (got,) = out.values()
    assert got.shape == expected.shape
    assert rel_error(got, expected) <= TOL, rel_error(got, expected)


@pytest.mark.parametrize(
    "name,target",
    [(n, "iOS16") for n in MODELS] + [(n, "iOS18") for n in FAST_IOS18],
)
def test_end_to_end(name, target):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    _run_e2e(make(), (torch.randn(*shape),), target)


@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_end_to_end_sdpa_ios18(mask):
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 6)
    m = None
    if mask == "bool":
        m = torch.rand(5, 7) > 0.3
        m[:, 0] = True
    elif mask == "float":
        m = torch.randn(1, 1, 5, 7)
    model = SDPA(m)
    mlmodel = convert(model, (q, k, v), target="iOS18")
    prog = interp.load(mlmodel)
    assert prog.op_counts.get("scaled_dot_product_attention") == 1
    out = prog.run({"x0": q.numpy(), "x1": k.numpy(), "x2": v.numpy()}, strict=True)
    (got,) = out.values()
    assert rel_error(got, model(q, k, v).numpy()) <= TOL


# ------------------------------------------------------- MIL-built programs (ops torch never emits)
def _mil_program(build, shape: tuple[int, ...], target: str):
    """Convert a one-input pymil program built by ``build(mb, x)``; returns the loaded interp Program."""
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return build(mb, x)

    return interp.load(milprog.convert(prog, {"x": np.zeros(shape, np.float32)}, target=target))


def _run_one(prog, x: torch.Tensor) -> torch.Tensor:
    (out,) = prog.run({prog.inputs[0].name: x.numpy()}, strict=True).values()
    return torch.from_numpy(np.asarray(out))


X4 = (1, 3, 6, 7)
MIL_CASES = {  # name: (target, build, torch reference of x)
    "resize_bilinear_strict": (
        "iOS16",
        lambda mb, x: mb.resize_bilinear(
            x=x, target_size_height=9, target_size_width=4, sampling_mode="STRICT_ALIGN_CORNERS"
        ),
        lambda x: F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=True),
    ),
    "resize_bilinear_unalign": (
        "iOS16",
        lambda mb, x: mb.resize_bilinear(
            x=x, target_size_height=11, target_size_width=5, sampling_mode="UNALIGN_CORNERS"
        ),
        lambda x: F.interpolate(x, size=(11, 5), mode="bilinear", align_corners=False),
    ),
    "resize_nearest": (
        "iOS16",
        lambda mb, x: mb.resize_nearest_neighbor(x=x, target_size_height=9, target_size_width=5),
        lambda x: F.interpolate(x, size=(9, 5), mode="nearest-exact"),
    ),
    # resize(DEFAULT) and upsample_bilinear(half_pixel_centers=False) are checked against onnxruntime in
    # test_conformance_resize.py (an independent implementation, not our own grid).
    "crop_resize_ios16": (
        "iOS16",
        lambda mb, x: mb.crop_resize(
            x=x,
            roi=np.array([0, 1, 2, 4, 6], np.float32).reshape(1, 1, 5, 1, 1),
            target_height=4,
            target_width=5,
            sampling_mode="ALIGN_CORNERS",
        ),
        lambda x: x[:, :, 1:5, 2:7].unsqueeze(0),
    ),
    "crop_resize_ios17": (
        "iOS17",
        lambda mb, x: mb.crop_resize(
            x=x,
            boxes=np.array([[0.0, 0.0, 1.0, 1.0]], np.float32),
            target_height=6,
            target_width=7,
            normalized_coordinates=True,
            sampling_mode="ALIGN_CORNERS",
        ),
        lambda x: x,
    ),
    "l2_norm": (
        "iOS16",
        lambda mb, x: mb.l2_norm(x=x, epsilon=0.0),
        lambda x: x / x.norm(),
    ),
    "lrn": (
        "iOS16",
        lambda mb, x: mb.local_response_norm(x=x, size=3, alpha=0.5, beta=0.7, k=1.5),
        lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.7, k=1.5),
    ),
    "l2_pool": (
        "iOS16",
        lambda mb, x: mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
        lambda x: F.lp_pool2d(x, 2, 2, 2),
    ),
    "avg_pool_same": (
        "iOS16",
        lambda mb, x: mb.avg_pool(
            x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same", exclude_padding_from_average=True
        ),
        lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    ),
    "conv_transpose_output_shape": (
        "iOS16",
        lambda mb, x: mb.conv_transpose(
            x=x,
            weight=np.ones((3, 2, 3, 3), np.float32),
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            output_shape=[1, 2, 12, 14],
        ),
        lambda x: F.conv_transpose2d(x, torch.ones(3, 2, 3, 3), None, 2, 1, 1),
    ),
}


@pytest.mark.parametrize("name", list(MIL_CASES))
def test_mil_built_programs(name):
    target, build, reference = MIL_CASES[name]
    prog = _mil_program(build, X4, target)
    x = rand(*X4)
    close(_run_one(prog, x), reference(x))


@pytest.mark.parametrize("name", ["avgpool_ceil_nopad", "bilinear"])
def test_end_to_end_fp16_models_run_in_fp16(name):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    model, x = make().eval(), torch.randn(*shape)
    prog = interp.load(convert(model, x, target="iOS16", precision="fp16"))
    (got,) = prog.run({"x": x.numpy()}, precision="fp16", strict=True).values()
    assert got.dtype == np.float16
    with torch.no_grad():
        err = rel_error(got, model(x).numpy())
    assert 0 < err <= 1e-2
