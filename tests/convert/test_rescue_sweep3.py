"""Translations the third outside-model sweep needed (devicefit/convert/rescue/sweep3.py), against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


@pytest.mark.parametrize("cell", ["GRUCell", "LSTMCell"])
def test_recurrent_cells_convert_on_torchscript(cell):
    # a GRU seq2seq decoder (GRUCell per step): "3 unsupported op(s): aten::unsafe_chunk ...": TorchScript
    # inlines GRUCell / LSTMCell into linear + unsafe_chunk, which coremltools 9.0 does not know
    torch.manual_seed(0)
    module = getattr(torch.nn, cell)(6, 5).eval().requires_grad_(False)  # held by a lambda: constants
    x, h = torch.randn(3, 6), torch.randn(3, 5)
    if cell == "LSTMCell":
        check_rescued(
            lambda a, b: module(a, (b, b * 0.5)), (x, h), "torchscript", "unsafe_chunk", 1e-5, atol=1e-6
        )
    else:
        check_rescued(lambda a, b: module(a, b), (x, h), "torchscript", "unsafe_chunk", 1e-5, atol=1e-6)


@pytest.mark.parametrize(("chunks", "dim"), [(3, 1), (2, 0), (4, -1), (3, 2)])
def test_unsafe_chunk_splits_like_chunk(chunks, dim):
    # uneven sizes too: 7 rows in 2 chunks are 4 + 3, 5 in 3 are 2 + 2 + 1; 5 in 4 are 2 + 2 + 1 (three pieces)
    x = torch.arange(4 * 7 * 5, dtype=torch.float32).reshape(4, 7, 5)
    check_rescued(
        lambda t: [p * 1 for p in torch.unsafe_chunk(t, chunks, dim)], (x,), "torchscript", "unsafe_chunk"
    )


def test_unsafe_split_splits_like_split():
    x = torch.arange(2 * 7, dtype=torch.float32).reshape(2, 7)
    check_rescued(lambda t: [p + 0 for p in torch.unsafe_split(t, 3, 1)], (x,), "torchscript", "unsafe_split")


@pytest.mark.parametrize("conj", [torch.conj, torch.conj_physical])
def test_cross_correlation_by_fft_with_a_conjugate(conj):
    # HF Autoformer's auto-correlation: irfft(rfft(q) * conj(rfft(k))): "1 unsupported op(s): aten::_conj"
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 12), torch.randn(2, 3, 12)
    check_rescued(
        lambda a, b: torch.fft.irfft(
            torch.fft.rfft(a, dim=-1) * conj(torch.fft.rfft(b, dim=-1)), n=12, dim=-1
        ),
        (q, k),
        "torchscript",
        "_conj",  # one translation, also under its aliases
        1e-4,
        atol=1e-5,
    )


def test_the_conjugate_of_a_real_tensor_is_the_tensor():
    x = torch.randn(3, 4)
    check_rescued(lambda a: torch.conj_physical(a) * 2, (x,), "torchscript", "_conj")


def test_a_spectrum_times_a_real_filter():
    torch.manual_seed(0)
    x, w = torch.randn(2, 16), torch.rand(9)
    check_rescued(
        lambda a, f: torch.fft.irfft(torch.fft.rfft(a) * f, n=16),
        (x, w),
        "torchscript",
        "mul",
        1e-4,
        atol=1e-5,
    )


def test_real_products_stay_with_coremltools():
    # the override hands every real (and bool) product back: not counted as devicefit's translation
    from tests.convert.elementwise_helpers import run_fn

    got, expected, rescued = run_fn(
        lambda a, b: (a * b, (a > 0) * (b > 0)), (torch.randn(3), torch.randn(3)), "torchscript"
    )
    assert "mul" not in rescued
    assert abs(got[0] - expected[0]).max() == 0


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(
    ("fn", "op"),
    [
        (lambda t: t.cumsum(dim=-2), "cumsum"),
        (lambda t: t.cumsum(dim=-3, dtype=torch.float32), "cumsum"),
        (lambda t: (t > 0).cumsum(-2), "cumsum"),
        (lambda t: torch.logcumsumexp(t, dim=-2), "logcumsumexp"),  # rescue/order.py's overflow-free one
    ],
    ids=["cumsum-2", "cumsum-3-dtype", "bool-cumsum-2", "logcumsumexp-2"],
)
def test_cumsum_along_a_negative_axis(frontend, fn, op):
    # HF Informer's decoder: value_states.cumsum(dim=-2): "ValueError: axis should be in the range [-1, 2]"
    # (coremltools 9.0 passes the negative dim to MIL, whose cumsum accepts -1 only)
    torch.manual_seed(0)
    check_rescued(fn, (torch.randn(2, 5, 3),), frontend, op, 1e-5, atol=1e-5)


class FakeQuant(torch.nn.Module):
    """A QAT model's fake-quant ops left in for export: activations per tensor, weights per channel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("scale", torch.tensor([0.05]))
        self.register_buffer("zero_point", torch.tensor([3], dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)
        b = torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)  # tensor qparams
        w = torch.fake_quantize_per_channel_affine(
            self.conv.weight, torch.tensor([0.01, 0.02, 0.03, 0.04]), torch.tensor([0, 1, -2, 0], dtype=torch.int32),
            0, -128, 127,
        )  # fmt: skip
        return a, b, torch.nn.functional.conv2d(a, w, self.conv.bias, padding=1)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_fake_quantize_is_exact(frontend):
    # a QAT model exported with its fake-quant ops: "2 unsupported op(s): aten::fake_quantize_per_tensor_affine,
    # aten::fake_quantize_per_channel_affine"; ties (x / scale = k + 0.5) round to even, as PyTorch's nearbyint
    from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

    x = torch.cat(
        [
            torch.randn(1, 3, 6, 6) * 4,
            (torch.arange(-6, 6.0) * 0.025 + 0.0).reshape(1, 3, 2, 2).expand(1, 3, 2, 2).repeat(1, 1, 3, 3),
        ],
        0,
    )
    got, expected, rescued = run_fn(FakeQuant().eval(), (x,), frontend)
    assert "fake_quantize_per_tensor_affine" in rescued and "fake_quantize_per_channel_affine" in rescued, (
        rescued
    )
    for g, e in zip(got[:2], expected[:2], strict=True):
        assert_close_elementwise(g, e, rtol=0.0)  # quantized values: exact
    assert_close_elementwise(got[2], expected[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_log_softmax_of_far_apart_logits_stays_finite(frontend, precision):
    # PointNet on points in millimetres: coremltools' log(softmax(x)) gave -103.3 (log of the smallest float32)
    # for -2.9e9; in fp16 a logit 17 below the top one already underflows softmax to 0 and log to -inf
    # (a CTC head's blank-dominated frames)
    gen = torch.Generator().manual_seed(0)
    if precision == "fp32":
        x, rtol, atol = torch.randn(2, 5, 6, generator=gen) * 1e3, 1e-5, 1e-4
    else:  # integer logits: exact in fp16, so the error is the op's, not the inputs' rounding
        x, rtol, atol = torch.randint(-40, 40, (2, 5, 6), generator=gen).float(), 1e-3, 2e-3
    check_rescued(
        lambda t: torch.log_softmax(t, dim=-1), (x,), frontend, "log_softmax", rtol, precision, atol
    )
