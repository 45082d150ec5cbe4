"""``diff`` and ``alias`` translations against PyTorch, through both frontends; a tiny LLaMA converts."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare

FRONTENDS = ["torchscript", "torch.export"]


class Diff(torch.nn.Module):
    def __init__(self, n: int = 1, dim: int = -1, prepend: bool = False, append: bool = False) -> None:
        super().__init__()
        self.n, self.dim, self.prepend, self.append = n, dim, prepend, append

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # prepend / append: slices of x itself, so they have x's dtype and the right shape on every axis
        first = x.narrow(self.dim, 0, 1) * 2 if self.prepend else None
        last = x.narrow(self.dim, 0, 2) - 1 if self.append else None
        return torch.diff(x, n=self.n, dim=self.dim, prepend=first, append=last)


class BoolDiff(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.diff(x > 0, dim=1).float()


CASES = {
    "1d": (Diff(), (5,)),
    "n2_dim1_prepend": (Diff(n=2, dim=1, prepend=True), (2, 5, 3)),
    "n3_dim0_both": (Diff(n=3, dim=0, prepend=True, append=True), (4, 3)),
    "dim_neg2_append": (Diff(dim=-2, append=True), (2, 3, 4, 2)),
    "n0_prepend": (Diff(n=0, prepend=True), (3, 4)),
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_diff_float_matches_torch(case, frontend):
    net, shape = CASES[case]
    torch.manual_seed(0)
    result, _ = convert_and_compare(net, (torch.randn(*shape),), frontend)
    if CASES[case][0].n > 0 and frontend == "torchscript":
        # torch.export decomposes diff into slices and subs; TorchScript keeps the node for the rescue
        assert "diff" in result.scan.rescued


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_diff_int_matches_torch(frontend):
    x = torch.randint(-50, 50, (3, 6), dtype=torch.int32)
    convert_and_compare(Diff(n=2, dim=1, prepend=True), (x,), frontend)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_diff_bool_is_not_equal(frontend):
    torch.manual_seed(1)
    convert_and_compare(BoolDiff(), (torch.randn(2, 7),), frontend)


def test_diff_rescue_is_needed():
    """Stock coremltools 9.0 has no diff translation (if that changes, the rescue steps aside)."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    assert _TORCH_OPS_REGISTRY.get_func("diff") is None


class TinyLlama(torch.nn.Module):
    def __init__(self, with_mask: bool) -> None:
        super().__init__()
        import transformers

        torch.manual_seed(0)
        config = transformers.LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=128,
        )
        self.llm = transformers.LlamaForCausalLM(config).eval()
        self.with_mask = with_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Without a mask, transformers' masking utilities look for packed sequences with torch.diff.
        mask = attention_mask if self.with_mask else None
        return self.llm(input_ids=input_ids, attention_mask=mask, use_cache=False).logits


def _llama_inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, 128, (1, 12), dtype=torch.int32)
    mask = torch.ones(1, 12, dtype=torch.int32)
    mask[0, 9:] = 0  # right padding: no query row is fully masked, so every position is comparable
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("frontend", ["torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "no_mask"])
def test_tiny_llama_converts_and_matches(frontend, with_mask):
    result, outputs = convert_and_compare(TinyLlama(with_mask), _llama_inputs(), frontend, tol=1e-4)
    assert abs(next(iter(outputs.values()))).max() > 0.05  # non-degenerate logits
    assert all(f.ok for f in result.scan.frontends[-1:])
    if not with_mask:
        # the packed-sequence check: a diff node (TorchScript) or its alias-laden decomposition (export)
        assert {"diff"} & set(result.scan.rescued) or "alias" in result.scan.rescued
