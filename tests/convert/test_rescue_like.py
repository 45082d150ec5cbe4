"""``zeros_like`` / ``ones_like`` / ``full_like`` / ``empty_like`` with ``dtype=`` (rescue overrides).

coremltools 9.0 read ``dtype`` only positionally, so under torch.export ``zeros_like(bool_mask,
dtype=float).masked_fill(mask, -inf)`` (how torch's own attention builds key-padding masks) came out bool, -inf
became 1.0 and padded keys were attended: an nn.TransformerEncoder with a padding mask converted silently
wrong (SNR 8.7 dB; `check` called it a conversion problem, rightly). ``ones_like`` / ``full_like`` ignored
``dtype`` at iOS16+.
"""

from __future__ import annotations

import textwrap

import pytest

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.sources import load_source
from tests.helpers import rel_error

LIKE = textwrap.dedent(
    """
    import torch


    class Like(torch.nn.Module):
        def forward(self, q, mask):
            pad = mask == 0
            a = torch.zeros_like(pad, dtype=q.dtype).masked_fill(pad, -1e4)
            b = torch.ones_like(pad, dtype=q.dtype) * 2.5
            c = torch.full_like(pad, 3.5, dtype=q.dtype)
            d = torch.empty_like(pad, dtype=q.dtype).shape[-1] * torch.ones_like(q)
            return a + b + c + d + q


    def make_model():
        mask = torch.ones(1, 6, dtype=torch.long)
        mask[:, 3:] = 0
        return Like().eval(), (torch.randn(1, 6), mask)
    """
)

ENCODER = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(50, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
            self.enc = nn.TransformerEncoder(layer, 2)
            self.head = nn.Linear(32, 3)

        def forward(self, ids, mask):
            return self.head(self.enc(self.emb(ids), src_key_padding_mask=mask == 0)[:, 0])


    def make_model():
        ids = torch.randint(0, 50, (1, 16), generator=torch.Generator().manual_seed(1))
        mask = torch.ones(1, 16, dtype=torch.long)
        mask[:, 5:] = 0  # 11 padded tokens: they must not be attended
        return Encoder().eval(), (ids, mask)
    """
)


def _convert_and_compare(tmp_path, text: str, frontend: str, tol: float):
    path = tmp_path / "model.py"
    path.write_text(text)
    source = load_source(str(path))
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert result.frontend == frontend
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        assert rel_error(outputs[name], expected) < tol, (name, outputs[name], expected)
    return result


@pytest.mark.parametrize("frontend", ["torch.export", "torchscript"])
def test_like_ops_honour_dtype(tmp_path, frontend):
    _convert_and_compare(tmp_path, LIKE, frontend, 1e-6)


def test_transformer_encoder_with_a_key_padding_mask_converts_right(tmp_path):
    # TorchScript fails on the fast path's nested tensors, torch.export takes the masked slow path
    result = _convert_and_compare(tmp_path, ENCODER, "torch.export", 1e-4)
    assert "zeros_like" in result.scan.rescued
