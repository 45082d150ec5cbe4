"""A ``torch.jit.script``-ed module: its graph keeps the Python control flow of every module it calls (BatchNorm's
``if input.dim() != 4: raise ValueError(...)``), which coremltools cannot convert (``prim::If``,
``prim::RaiseException``, ``aten::format``). The TorchScript frontend specializes such a graph to the example
input's shapes first (frozen, ranks known, constant branches folded), as tracing the eager module would.
"""

from __future__ import annotations

import textwrap

import numpy as np

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.sources import load_source

SCRIPTED = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.features(x).mean((2, 3))
            if h.dim() == 2:  # a shape check of the user's own, resolved at the example's rank
                h = self.norm(h)
            return self.fc(h)


    def make_model():
        torch.manual_seed(0)
        net = Net().eval()
        with torch.no_grad():
            net.features[1].running_var.uniform_(0.5, 1.5)
        return torch.jit.script(net), torch.randn(2, 3, 8, 8)
    """
)


def test_a_scripted_module_converts_and_matches_pytorch(tmp_path):
    path = tmp_path / "scripted.py"
    path.write_text(SCRIPTED)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend="torchscript"))
    got = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)
    # the user's module is left as it was: still the scripted module, its branches still there
    assert type(source.module).__name__ == "RecursiveScriptModule"
    assert source.module.inlined_graph.findAllNodes("prim::If")
