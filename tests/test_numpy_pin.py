"""coremltools 9.0 + numpy>=2.4 breaks traced models that turn a tensor shape into an int; numpy is pinned <2.4."""

from __future__ import annotations

import numpy as np
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.sources import SourceModel, spec


class ShapeToInt(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, width = int(x.size(0)), int(x.size(1))
        flat = x.view(x.shape[0], -1)
        return flat * width + batch


def test_installed_numpy_satisfies_pin():
    major, minor = (int(p) for p in np.__version__.split(".")[:2])
    assert (2, 0) <= (major, minor) < (2, 4), np.__version__


def test_shape_to_int_model_converts_and_runs():
    x = torch.randn(2, 3, 4)
    source = SourceModel(
        kind="python",
        origin="ShapeToInt",
        module=ShapeToInt().eval(),
        exported=None,
        mlmodel=None,
        input_specs=[spec.spec_of("x", x.numpy())],
        example_inputs={"x": x.numpy()},
        output_names=["output"],
    )
    result = convert(source, ConvertOptions(precision="fp32", frontend="torchscript"))
    out = interp.load(result.mlmodel).run({"x": x.numpy()})["output"]
    np.testing.assert_allclose(out, source.reference({"x": x.numpy()})["output"], rtol=1e-6)
    assert out.shape == (2, 12)
