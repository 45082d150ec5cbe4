"""Provenance of modules held in an ``nn.ModuleList`` (iterated in ``forward``), on TorchScript.

TorchScript's scopes name such a module ``0.norm`` (the list's own name is lost: the list is never called), so
the finding read ``0.norm (RMSNorm)`` with no source line, where torch.export gave ``blocks.0.norm at net.py:7``.
"""

from __future__ import annotations

import textwrap

from devicefit.convert import ConvertOptions, convert
from devicefit.convert.provenance import load_from_package
from devicefit.sources import load_source

STACK = textwrap.dedent(
    """
    import torch


    class Norm(torch.nn.Module):
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)  # LINE_NORM


    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Norm()
            self.mlp = torch.nn.Linear(8, 8)

        def forward(self, x):
            return x + self.mlp(self.norm(x))


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block() for _ in range(2)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x


    def make_model():
        return Net().eval(), torch.randn(1, 4, 8)
    """
)


def test_module_list_children_keep_their_full_path_and_line(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(STACK)
    result = convert(
        load_source(f"{path}:make_model"), ConvertOptions(precision="fp32", frontend="torchscript")
    )
    origins = {o.module_path: o for _, o in load_from_package(result.mlmodel).items()}
    assert "blocks.1.norm" in origins and "1.norm" not in origins, sorted(origins)
    line = next(i for i, text in enumerate(STACK.splitlines(), 1) if "LINE_NORM" in text)
    assert origins["blocks.1.norm"].location.endswith(f"net.py:{line}"), origins["blocks.1.norm"]
    assert origins["blocks.0.mlp"].module_type == "Linear"
