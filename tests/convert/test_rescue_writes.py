"""Translations for refusals the differential fuzzer left open (docs/interpreter-conformance.md):
``Tensor.masked_scatter``, ``scatter`` / ``scatter_add`` / ``scatter_reduce`` with an index smaller than the input on
another axis, ``repeat_interleave`` with a tensor of repeats, transposed convolutions with ``output_padding``.
Each converted, run on the interpreter in fp32 and fp16 and compared with PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
# fp16: the package stores every value at fp16 (a relative 2**-11); data movement adds nothing to that
FP16 = {"precision": "fp16", "rtol": 2e-3, "atol": 2e-3}


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_masked_scatter(frontend, precision):
    gen = _gen()
    x = torch.randn(4, 5, generator=gen)
    source = torch.arange(30.0).reshape(5, 6) / 8
    row_mask = torch.tensor([True, False, True, True, False])  # broadcast over the rows
    kwargs = FP16 if precision == "fp16" else {}
    check_rescued(lambda t: t.masked_scatter(t > 0, source), (x,), frontend, "masked_scatter", **kwargs)
    check_rescued(lambda t: t.masked_scatter(row_mask, source), (x,), frontend, "masked_scatter", **kwargs)


def test_masked_scatter_broadcasts_the_input_against_a_larger_mask():
    """The out-of-place form's result has the broadcast shape of the input and the mask."""
    mask = torch.tensor([[[True], [False]], [[False], [True]]])  # (2, 2, 1) against (3,)
    check_rescued(
        lambda t: t.masked_scatter(mask, torch.arange(12.0)),
        (torch.randn(3),),
        "torchscript",
        "masked_scatter",
    )


def test_masked_scatter_of_integers_and_a_runtime_mask():
    x = torch.randint(-5, 5, (3, 4), generator=_gen())
    check_rescued(
        lambda t, m: t.masked_scatter(m > 0, torch.arange(12).reshape(3, 4) * 10),
        (x, torch.randn(3, 4, generator=_gen())),
        "torchscript",
        "masked_scatter",
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_scatter_with_a_smaller_index(frontend, precision):
    x = torch.randn(3, 4, generator=_gen())
    index = torch.tensor([[0, 2], [1, 0]])
    src = torch.arange(12.0).reshape(3, 4) / 4  # larger than the index: PyTorch reads only its corner
    kwargs = FP16 if precision == "fp16" else {}
    check_rescued(lambda t: torch.scatter(t, 1, index, src), (x,), frontend, "scatter", **kwargs)
    check_rescued(lambda t: torch.scatter(t, 1, index, -2.5), (x,), frontend, "scatter", **kwargs)
    # repeated positions along dim 0 add up
    check_rescued(lambda t: torch.scatter_add(t, 0, index, src), (x,), frontend, "scatter_add", **kwargs)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "amax", "mean"])
def test_scatter_reduce_with_a_smaller_index(reduce, include):
    x = torch.randn(3, 4, generator=_gen())
    index = torch.tensor([[0, 2, 2], [0, 0, 1]])
    src = torch.randn(2, 3, generator=_gen()) * 3
    check_rescued(
        lambda t: torch.scatter_reduce(t, 0, index, src, reduce, include_self=include),
        (x,),
        "torchscript",
        "scatter_reduce",
        rtol=1e-6,
    )


def test_scatter_with_a_runtime_smaller_index():
    x = torch.randn(2, 3, 4, generator=_gen())
    index = torch.tensor([[[3, 0]], [[1, 2]]])
    check_rescued(
        lambda t, i: torch.scatter_add(t, 2, i, torch.ones(2, 1, 2)), (x, index), "torchscript", "scatter_add"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_repeat_interleave_with_a_tensor_of_repeats(frontend, precision):
    x = torch.randn(2, 3, generator=_gen())
    counts = torch.tensor([1, 0, 3])
    kwargs = FP16 if precision == "fp16" else {}
    check_rescued(
        lambda t: torch.repeat_interleave(t, counts, 1), (x,), frontend, "repeat_interleave", **kwargs
    )
    check_rescued(
        lambda t: torch.repeat_interleave(t, torch.tensor([2, 0, 1, 1, 0, 3])),
        (x,),
        frontend,
        "repeat_interleave",
        **kwargs,
    )


def test_repeat_interleave_with_runtime_repeats_is_refused_in_one_line():
    from devicefit.convert import ConversionError

    x = torch.randn(3)
    with pytest.raises(ConversionError) as info:
        check_rescued(
            lambda t, r: torch.repeat_interleave(t, r, 0), (x, torch.tensor([1, 2, 0])), "torchscript", ""
        )
    message = str(info.value)
    assert "\n" not in message
    assert "repeat_interleave" in message and "computed at run time" in message and "constant" in message


def test_runtime_repeats_refusal_gives_the_fixed_length_rewrite():
    # repeats the model predicts (FastSpeech's length regulator) cannot be a constant: what check lists to do
    # also gives the fixed-length rewrite, which converts (searchsorted over the repeats' running sum)
    from devicefit.convert import scan
    from tests.convert.elementwise_helpers import Fn
    from tests.convert.helpers import source_of

    fn = Fn(lambda t, r: torch.repeat_interleave(t, r, 0)).eval()
    (entry,) = scan(source_of(fn, (torch.randn(3), torch.tensor([1, 2, 0])))).unsupported
    assert "torch.searchsorted(" in entry.hint and "max_len" in entry.hint, entry.hint
    assert not entry.hint.endswith("..."), entry.hint  # shown whole


CONV_T = [
    # (rank, input shape, weight shape, kwargs): padding 0 and output_padding (coremltools refused), 3-D, padding
    # below the output padding (coremltools padded the input), groups + dilation
    (1, (1, 2, 5), (2, 3, 3), {"stride": 2, "output_padding": 1}),
    (1, (1, 4, 5), (4, 1, 3), {"stride": 3, "output_padding": 2, "groups": 2, "dilation": 2, "padding": 1}),
    (2, (1, 2, 3, 4), (2, 3, 3, 2), {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2)}),
    (
        3,
        (1, 2, 2, 3, 2),
        (2, 2, 2, 1, 3),
        {"stride": (2, 1, 2), "padding": (0, 0, 1), "output_padding": (1, 0, 1)},
    ),
]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("rank", "shape", "wshape", "kwargs"), CONV_T)
def test_conv_transpose_with_output_padding(frontend, rank, shape, wshape, kwargs):
    gen = _gen()
    x = torch.randn(*shape, generator=gen)
    weight = torch.randn(*wshape, generator=gen)
    bias = torch.randn(wshape[1] * kwargs.get("groups", 1), generator=gen)
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    check_rescued(
        lambda t: fn(t, weight, bias, **kwargs), (x,), frontend, "_convolution", rtol=1e-5, atol=1e-5
    )
    check_rescued(
        lambda t: fn(t, weight, None, **kwargs),
        (x,),
        frontend,
        "_convolution",
        precision="fp16",
        rtol=1e-2,
        atol=1e-2,
    )


def test_conv_transpose_without_output_padding_stays_with_coremltools():
    from tests.convert.elementwise_helpers import run_fn

    x = torch.randn(1, 2, 5)
    got, expected, rescued = run_fn(
        lambda t: F.conv_transpose1d(t, torch.ones(2, 3, 3), stride=2), (x,), "torchscript"
    )
    assert "_convolution" not in rescued
    torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))
