"""Circular padding (``F.pad(mode="circular")``, ``Conv2d(padding_mode="circular")``): coremltools 9.0 refused it.

The rescue override builds it from slices and a concat and leaves every other pad mode to coremltools.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.sources import load_source
from tests.convert.elementwise_helpers import run_fn
from tests.helpers import rel_error

CIRCULAR = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class Periodic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
            self.reflect = torch.nn.Conv2d(4, 4, 3, padding=2, padding_mode="reflect")
            self.conv1d = torch.nn.Conv1d(4, 4, 5, padding=2, padding_mode="circular")

        def forward(self, x):
            h = self.conv(x)
            h = F.pad(h, (2, 1, 0, 3), mode="circular")  # uneven sides, one axis left alone
            h = self.reflect(h)
            h = F.pad(h, (1, 2, 3, 1), mode="constant", value=0.5)
            seq = self.conv1d(h.flatten(2)[..., :40])
            return h, F.pad(seq, (3, 0), mode="circular")


    def make_model():
        return Periodic().eval(), torch.randn(2, 3, 6, 7)
    """
)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_circular_padding_converts_and_matches_pytorch(tmp_path, frontend):
    path = tmp_path / "periodic.py"
    path.write_text(CIRCULAR)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert "pad" in result.scan.rescued
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        assert outputs[name].shape == expected.shape, name
        assert rel_error(outputs[name], expected) < 1e-5, name


def test_ordinary_padding_is_not_reported_as_a_devicefit_translation(tmp_path):
    path = tmp_path / "reflect.py"
    path.write_text(
        "import torch\n"
        "def make_model():\n"
        "    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode='reflect')\n"
        "    return conv.eval(), torch.randn(1, 3, 8, 8)\n"
    )
    result = convert(load_source(f"{path}:make_model"), ConvertOptions(precision="fp32"))
    assert "pad" not in result.scan.rescued  # coremltools' own translation did the work


CROPPING = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class TimeShift(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shift = torch.nn.ZeroPad2d((0, 0, 1, -1))  # RWKV's token shift: one step later, last dropped

        def forward(self, x):
            shifted = self.shift(x)
            both = F.pad(x, (-1, 2, 2, -3), value=0.25)  # crop and pad on each axis
            return shifted, both


    def make_model():
        return TimeShift().eval(), torch.randn(2, 6, 5)
    """
)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_negative_padding_crops(tmp_path, frontend):
    # RWKV's nn.ZeroPad2d((0, 0, 1, -1)): coremltools 9.0 refused the negative pad ("aten::pad" unsupported)
    path = tmp_path / "shift.py"
    path.write_text(CROPPING)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        assert outputs[name].shape == expected.shape, name
        assert rel_error(outputs[name], expected) < 1e-6, name


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_a_crop_that_empties_an_axis_leaves_only_the_padding(frontend):
    # difffuzz seed 46: F.pad(x, (-1, 1)) of a size-1 axis crops it to nothing, then pads one value: PyTorch gives
    # a tensor of the fill value; the crop's slice kept the axis (Core ML has no empty tensors), so the result
    # had 2 values on it
    x = torch.randn(7, 2, 1, generator=torch.Generator().manual_seed(0))
    for pads, value in (((-1, 1), 0.0), ((0, 0, -2, 3), 1.5)):
        got, expected, _ = run_fn(lambda t, p=pads, v=value: F.pad(t, p, value=v) * 1.0, (x,), frontend)
        assert got[0].shape == expected[0].shape
        torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))
