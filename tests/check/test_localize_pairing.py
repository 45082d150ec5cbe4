"""Localisation pairs a program value only with the PyTorch value that is the same quantity.

``F.scaled_dot_product_attention`` with a boolean mask is one fused kernel in PyTorch: on its line, the only
value of the attention weights' shape PyTorch computes is the mask turned additive (``where(mask, 0, -inf)``),
while the converted program computes scores and a softmax there. Pairing by (line, shape) alone compared the
softmax with the mask (relative error 1) and blamed a correct conversion's attention line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

ATTENTION = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qkv = torch.nn.Linear(8, 24)
            self.out = torch.nn.Linear(8, 8)
            self.emb = torch.nn.Embedding(97, 8)

        def forward(self, x, mask, ids):
            q, k, v = self.qkv(x).view(1, 8, 3, 2, 4).permute(2, 0, 3, 1, 4)
            keep = mask[:, None, None, :].expand(1, 2, 8, 8).bool()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # LINE_SDPA
            buckets = (ids * WRAP + 12345) % 97  # LINE_HASH
            return self.out(y.transpose(1, 2).reshape(1, 8, 8)) + self.emb(buckets)


    def make_model():
        return Attn().eval(), {
            "x": torch.randn(1, 8, 8),
            "mask": torch.tensor([[1, 1, 1, 1, 1, 1, 0, 1]]),
            "ids": torch.randint(0, 30000, (1, 8)),
        }
    """
)


def _localise(tmp_path: Path, wrap: int) -> tuple[Any, str]:
    (tmp_path / "attn.py").write_text(ATTENTION.replace("WRAP", str(wrap)))
    return _localise_text(tmp_path)


def _localise_text(tmp_path: Path) -> tuple[Any, str]:
    """The first divergent line of the fp32 conversion of ``attn.py:make_model`` in ``tmp_path``, and its text."""
    from devicefit import interp
    from devicefit.check import convert as convert_stage
    from devicefit.check import sources as sources_stage
    from devicefit.check import validate as validate_stage
    from devicefit.check.localize import first_divergent_line
    from devicefit.check.types import CheckOptions
    from devicefit.convert.provenance import load_from_package

    text = (tmp_path / "attn.py").read_text()
    options = CheckOptions(
        model=f"{tmp_path / 'attn.py'}:make_model", samples=1, repair=False, precision="fp32"
    )
    source = sources_stage.load_model(options)
    program = interp.load(convert_stage.convert(source, options).mlmodel)
    feeds = sources_stage.load_dataset(source, options).feeds[0]
    program_feeds = validate_stage.program_feeds(feeds, options.image_inputs, program)
    found = first_divergent_line(source, program, load_from_package(program), feeds, program_feeds)
    return found, text


def _line(text: str, marker: str) -> str:
    return f"attn.py:{next(i for i, t in enumerate(text.splitlines(), 1) if marker in t)}"


@pytest.mark.filterwarnings("ignore")
def test_a_correct_sdpa_with_a_boolean_mask_is_not_blamed(tmp_path: Path) -> None:
    found, _ = _localise(tmp_path, wrap=1)  # (ids + 12345) % 97: no wrap, the conversion is exact
    assert found is None, found.describe()


@pytest.mark.filterwarnings("ignore")
def test_the_real_divergence_after_an_sdpa_line_is_the_one_named(tmp_path: Path) -> None:
    found, text = _localise(tmp_path, wrap=1000003)  # int32 wraps where PyTorch's int64 does not
    assert found is not None
    assert found.label.endswith(_line(text, "LINE_HASH")), found.describe()


LOOP = textwrap.dedent(
    """
    import torch


    class Grid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.table = torch.nn.Parameter(torch.randn(4, 64, 2))
            self.register_buffer("res", torch.tensor([4, 8, 16, 32]))

        def forward(self, xy):
            feats = []
            for level in range(4):
                pos = xy * self.res[level]
                cell = pos.floor().long()
                frac = pos - cell
                out = 0
                for dx in (0, 1):
                    for dy in (0, 1):
                        cx, cy = cell[..., 0] + dx, cell[..., 1] + dy
                        index = (cx + cy * WRAP) % 64  # LINE_HASH
                        wx = frac[..., 0] if dx else 1 - frac[..., 0]  # LINE_WEIGHT
                        wy = frac[..., 1] if dy else 1 - frac[..., 1]
                        out = out + (wx * wy)[..., None] * self.table[level][index]
                feats.append(out)
            return torch.cat(feats, -1)


    def make_model():
        return Grid().eval(), torch.rand(1, 32, 2, generator=torch.Generator().manual_seed(5))
    """
)


@pytest.mark.filterwarnings("ignore")
def test_a_line_run_in_a_loop_is_paired_with_any_of_its_runs(tmp_path: Path) -> None:
    # the program's last value of the weight line is another iteration's than PyTorch's last (the converter
    # merges and reorders the loop's copies): pairing only the last ones blamed the weight line (error 0.88)
    (tmp_path / "attn.py").write_text(LOOP.replace("WRAP", "1"))
    found, _ = _localise_text(tmp_path)
    assert found is None, found.describe()
    (tmp_path / "attn.py").write_text(LOOP.replace("WRAP", "2654435761"))  # int32 wraps where int64 does not
    found, text = _localise_text(tmp_path)
    assert found is not None and found.label.endswith(_line(text, "LINE_HASH")), found.describe()
