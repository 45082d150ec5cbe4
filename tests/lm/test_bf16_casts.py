"""Casts to bfloat16 convert, and the program computes what PyTorch computes in bfloat16 (convert/rescue/lm_casts.py).

Falcon's ALiBi (``build_alibi_tensor``, Falcon-RW) rounds its slopes to bfloat16 and multiplies them by the
integer positions in bfloat16: coremltools has no bfloat16 and refused ``aten::to`` (``KeyError: 15``), so the
plain ``check --task default`` of any ALiBi Falcon failed to convert. Leaving the rounding out is not an
answer either: with 16 heads (slopes 2^-k/2, not powers of two) the unrounded bias moves the logits to SNR
41.5 dB, which the fidelity bound (60 dB) would call a conversion problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


def _alibi(mask: torch.Tensor) -> torch.Tensor:
    """Falcon's ALiBi for 16 heads, written as transformers writes it (slopes 2^(-k/2): bfloat16 rounds them)."""
    slopes = torch.pow(torch.full((), 2 ** (-0.5)), torch.arange(1, 17, dtype=torch.int32))
    positions = ((mask.cumsum(dim=-1) - 1) * mask)[:, None, :]
    alibi = slopes[..., None].bfloat16() * positions  # a bfloat16 product of bfloat16 slopes and integers
    return alibi.reshape(16, 1, mask.shape[1]).to(torch.float32)


def test_alibi_bias_is_bfloat16_exact() -> None:
    # 300 positions: integers past 256 are rounded to bfloat16 too (PyTorch casts them to the common dtype)
    mask = torch.ones(1, 300, dtype=torch.int32)
    mask[0, 290:] = 0
    check_rescued(_alibi, (mask,), "torchscript", "to")


def test_a_runtime_value_rounds_like_pytorch() -> None:
    """A cast of a computed value (not a constant) rounds to nearest even on bfloat16's 8-bit mantissa."""
    torch.manual_seed(0)
    # |x * 3.7| from 1e-8 to 1e4, both signs: the ordinary range (the tests below cover fp32's extremes)
    x = (torch.rand(4, 64) + 0.5) * torch.logspace(-8, 3.5, 64) * torch.randint(0, 2, (4, 64)).mul(2).sub(1)
    check_rescued(lambda v: (v * 3.7).bfloat16().to(torch.float32) + 0.0, (x,), "torchscript", "to")


def test_bfloat16_arithmetic_rounds_each_result() -> None:
    """(a + b) * 3 in bfloat16 rounds the sum and the product, as PyTorch does."""
    torch.manual_seed(0)
    x = torch.randn(2, 50) * 7
    fn = lambda v: ((v.bfloat16() + torch.arange(50, dtype=torch.int32)) * 3).to(torch.float32)  # noqa: E731
    check_rescued(fn, (x,), "torchscript", "to")


def test_bfloat16_times_a_float_tensor_is_float() -> None:
    """bfloat16 * float32 tensor is float32 in PyTorch: the product is not rounded (only the cast operand is)."""
    torch.manual_seed(0)
    x, w = torch.randn(3, 40) * 5, torch.randn(3, 40)
    check_rescued(lambda a, b: (a.bfloat16() * b).to(torch.float32), (x, w), "torchscript", "to")


def test_other_casts_are_coremltools_own() -> None:
    from tests.convert.elementwise_helpers import run_fn

    fn = lambda v: v.to(torch.int32) + v.to(torch.float16).to(torch.float32)  # noqa: E731
    got, expected, rescued = run_fn(fn, (torch.randn(3, 5) * 9,), "torchscript")
    assert "to" not in rescued  # handed to coremltools' own translation
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-3)


@pytest.mark.slow
def test_plain_check_of_an_alibi_falcon_converts_and_is_faithful(tmp_path: Path) -> None:
    import transformers as tf

    from devicefit.check.pipeline import run_check
    from devicefit.check.types import CheckOptions
    from tests.lm.families import _EXTRA, VOCAB

    config = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=16,
                  initializer_range=0.2, **_EXTRA["falcon_alibi"][2])  # fmt: skip
    torch.manual_seed(0)
    tf.FalconForCausalLM(tf.FalconConfig(**config)).eval().save_pretrained(tmp_path / "falcon")
    result = run_check(CheckOptions(model=str(tmp_path / "falcon"), samples=2, repair=False))
    assert result.convert.ok, result.convert.error
    fidelity = result.questions["conversion_fidelity"].comparison
    assert fidelity.passed, fidelity.headline()
    assert fidelity.worst("snr_db") > 60  # the bias rounded as PyTorch rounds it (unrounded: 41.5 dB)


def test_a_runtime_value_beyond_fp16_range_rounds_like_pytorch() -> None:
    """fp32 programs hold values up to 3e38: 72419.5 rounds to 72192 on bfloat16's 512-wide grid there (it was
    rounded on a 256 grid, 72448: the step ladder stopped at 2^16), and so up to fp32's largest octaves."""
    torch.manual_seed(39)
    octaves = torch.tensor([2.0**k for k in range(-20, 127, 3)])
    x = torch.cat([torch.tensor([72419.546875 / 3.7]), (torch.rand(len(octaves)) + 1.0) * octaves])
    check_rescued(
        lambda v: (v * 3.7).bfloat16().to(torch.float32) + 0.0, (x.reshape(1, -1),), "torchscript", "to"
    )


def test_a_runtime_value_below_the_ladder_rounds_like_pytorch() -> None:
    """Down to fp32's subnormals (bfloat16's fixed subnormal step): 7.548e-10 was kept as it was (2^-30 and up only)."""
    torch.manual_seed(4)
    octaves = torch.tensor([2.0**k for k in range(-148, -20, 3)])
    x = torch.cat(
        [torch.tensor([7.54844242667474e-10 / 3.7, 0.0, -0.0]), (torch.rand(len(octaves)) + 1.0) * octaves]
    )
    check_rescued(
        lambda v: (v * 3.7).bfloat16().to(torch.float32) + 0.0, (x.reshape(1, -1),), "torchscript", "to"
    )


def test_an_fp16_program_rounds_its_whole_range_like_pytorch() -> None:
    """The levels for magnitudes fp16 cannot hold must not touch an fp16 program's values (their constants
    become 0 or the fp16-safe 32752 there): values from fp16's subnormals up to 65280, fp16-exact inputs (past
    65408 bfloat16 rounds to 65536, which fp16 cannot hold: the documented limit of fp16 programs)."""
    torch.manual_seed(5)
    octaves = torch.tensor([2.0**k for k in range(-24, 16)])
    x = ((torch.rand(3, len(octaves)) + 1.0) * octaves).clamp(max=65280).half().float()
    x = (
        torch.cat([x, torch.tensor([[65280.0] * len(octaves)])])
        * torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None]
    )
    check_rescued(lambda v: v.bfloat16().to(torch.float32) + 0.0, (x,), "torchscript", "to", precision="fp16")


def test_the_rounding_declares_the_shapes_it_computes() -> None:
    """Every value of the rounding has the type its values have: the grid-step candidates were a ``select`` whose
    condition alone had the value's shape, and coremltools types a select by ``a`` and ``b`` alone, so the
    program declared a (1, 3, 16, 16) cast's step a (46,) vector, then a scalar (the interpreter computed the
    right values; a runtime that trusts the types would not)."""
    from tests.convert.elementwise_helpers import mistyped_values

    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    wrong = mistyped_values(lambda v: v.bfloat16().to(torch.float32) * 2.0, (x,))
    assert not wrong, wrong
