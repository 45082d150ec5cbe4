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


SEQUENTIAL_AND_LIST = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU())
            self.blocks = nn.ModuleList([nn.Conv1d(4, 4, 3, padding=2, dilation=2) for _ in range(2)])

        def forward(self, x):
            x = self.front(x)
            for conv in self.blocks:
                x = x + conv(x)  # LINE_BLOCK
            return x


    def make_model():
        return Net().eval(), torch.randn(1, 1, 32)
    """
)


def test_a_list_child_is_not_confused_with_a_sequential_child_of_the_same_index(tmp_path):
    # scoped "0" (the list's name lost), the list's conv matched both "blocks.0" and "front.0": the finding
    # read "1 (Conv1d)" with no source line
    path = tmp_path / "net.py"
    path.write_text(SEQUENTIAL_AND_LIST)
    result = convert(
        load_source(f"{path}:make_model"), ConvertOptions(precision="fp32", frontend="torchscript")
    )
    origins = {o.module_path: o for _, o in load_from_package(result.mlmodel).items()}
    assert {"blocks.0", "blocks.1", "front.0"} <= set(origins) and "1" not in origins, sorted(origins)
    line = next(i for i, text in enumerate(SEQUENTIAL_AND_LIST.splitlines(), 1) if "LINE_BLOCK" in text)
    assert origins["blocks.1"].location.endswith(f"net.py:{line}"), origins["blocks.1"]


ZIPPED_LISTS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs1 = nn.ModuleList([nn.Conv1d(4, 4, 3, padding=1) for _ in range(2)])
            self.convs2 = nn.ModuleList([nn.Conv1d(4, 4, 3, padding=1) for _ in range(2)])

        def forward(self, x):
            for c1, c2 in zip(self.convs1, self.convs2):
                x = x + c2(torch.tanh(c1(x)))  # LINE_PAIR
            return x


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norms = nn.ModuleList([nn.GroupNorm(1, 4) for _ in range(2)])
            self.blocks = nn.ModuleList([Block() for _ in range(2)])

        def forward(self, x):
            for norm, block in zip(self.norms, self.blocks):
                x = x + block(norm(x)) * 0.5  # LINE_BLOCK
            return x


    def make_model():
        return Net().eval(), torch.randn(1, 4, 16)
    """
)


def test_children_of_lists_iterated_together_keep_their_full_path(tmp_path):
    # Mamba-style ``zip(self.norms, self.layers)`` at the root and HiFi-GAN's ``zip(self.convs1, self.convs2)``:
    # scoped "1" / "1.0", each fitting two lists of the same length, the findings read "1 (Block)" and
    # "1.0 (Conv1d)" with no source line
    path = tmp_path / "net.py"
    path.write_text(ZIPPED_LISTS)
    result = convert(
        load_source(f"{path}:make_model"), ConvertOptions(precision="fp32", frontend="torchscript")
    )
    origins = {o.module_path: o for _, o in load_from_package(result.mlmodel).items()}
    assert {"blocks.1", "blocks.1.convs1.0", "blocks.1.convs2.0", "norms.1"} <= set(origins), sorted(origins)
    assert not {"1", "1.0", "0"} & set(origins), sorted(origins)
    lines = ZIPPED_LISTS.splitlines()
    block = next(i for i, text in enumerate(lines, 1) if "LINE_BLOCK" in text)
    pair = next(i for i, text in enumerate(lines, 1) if "LINE_PAIR" in text)
    assert origins["norms.1"].location.endswith(f"net.py:{block}"), origins["norms.1"]
    assert origins["blocks.1"].location.endswith(f"net.py:{pair}"), origins["blocks.1"]
    assert origins["blocks.1.convs2.0"].module_type == "Conv1d"
    assert origins["blocks.1.convs2.0"].location.endswith(f"net.py:{pair}"), origins["blocks.1.convs2.0"]
