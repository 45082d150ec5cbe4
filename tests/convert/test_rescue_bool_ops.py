"""``mask_a | mask_b`` and ``mask_a ^ mask_b`` on bool masks: coremltools 9.0 had no translation (``__or__``)."""

from __future__ import annotations

import textwrap

import pytest

from devicefit import interp
from devicefit.convert import ConvertOptions, convert, scan
from devicefit.sources import load_source
from tests.helpers import rel_error

MASKS = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class SelfOrCausal(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qkv = torch.nn.Linear(16, 48)

        def forward(self, x, valid):
            t = x.shape[1]
            keep = valid.bool()
            allowed = torch.ones(t, t, dtype=torch.bool).tril()[None] & keep[:, None, :]
            allowed = allowed | torch.eye(t, dtype=torch.bool)[None]  # a padded token attends to itself
            flipped = keep ^ (x[..., 0] > 0)
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            return out.masked_fill(~keep[..., None], 0.0), flipped.float()


    def make_model():
        valid = torch.ones(2, 8, dtype=torch.long)
        valid[1, 5:] = 0
        return SelfOrCausal().eval(), (torch.randn(2, 8, 16), valid)
    """
)

INT_BITS = textwrap.dedent(
    """
    import torch


    class Buckets(torch.nn.Module):
        def forward(self, ids):
            return (ids | 1) * 2  # LINE_OR


    def make_model():
        return Buckets().eval(), torch.randint(0, 50, (1, 6))
    """
)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_bool_or_and_xor_convert_and_match_pytorch(tmp_path, frontend):
    path = tmp_path / "masks.py"
    path.write_text(MASKS)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert {"bitwise_or", "bitwise_xor"} <= set(result.scan.rescued)
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        assert rel_error(outputs[name], expected) < 1e-5, name


def test_integer_or_says_what_to_do(tmp_path):
    path = tmp_path / "buckets.py"
    path.write_text(INT_BITS)
    report = scan(load_source(f"{path}:make_model"))
    assert not report.ok
    (entry,) = report.unsupported
    assert entry.location.startswith("buckets.py:")
    assert "%" in entry.hint or "outside the model" in entry.hint, entry.hint


COUNTS = textwrap.dedent(
    """
    import torch


    class Support(torch.nn.Module):
        def forward(self, z):
            z_sorted = torch.sort(z, dim=-1, descending=True).values
            k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype)
            support = (1 + k * z_sorted) > torch.cumsum(z_sorted, dim=-1)
            k_z = support.sum(dim=-1, keepdim=True)  # an integer count in PyTorch
            tau = (torch.cumsum(z_sorted, dim=-1).gather(-1, k_z - 1) - 1) / k_z.to(z.dtype)
            return torch.clamp(z - tau, min=0), (z > 0).sum(), k_z


    def make_model():
        return Support().eval(), torch.randn(2, 3, 7)
    """
)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_sum_of_a_bool_mask_is_an_integer(tmp_path, frontend):
    # coremltools summed a bool tensor as fp32: gather refused the count as an index (sparsemax's support size)
    path = tmp_path / "counts.py"
    path.write_text(COUNTS)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert "sum" in result.scan.rescued
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        assert outputs[name].dtype.kind == expected.dtype.kind, name
        assert rel_error(outputs[name], expected) < 1e-5, name
