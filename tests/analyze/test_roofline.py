"""FLOPs / bytes per op and roofline lower bounds, checked against hand arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from devicefit.analyze import flops, roofline
from devicefit.analyze.catalog import get_device
from devicefit.errors import InputError


def _mb():
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    return mb, types


def _conv_program(bias: bool = False):
    mb, types = _mb()
    w = np.ones((8, 3, 3, 3), np.float16)
    b = np.ones(8, np.float16)

    @mb.program(input_specs=[mb.TensorSpec((1, 3, 16, 16), dtype=types.fp16)])
    def prog(x):
        kw = {"bias": b} if bias else {}
        return mb.conv(x=x, weight=w, pad_type="same", **kw)

    return prog


def _costs(prog):
    return flops.function_costs(prog.functions["main"])


def test_conv3x3_flops_and_bytes_by_hand():
    (c,) = _costs(_conv_program())
    # 2 FLOPs per MAC x 8 output channels x 16x16 positions x 3 input channels x 3x3 taps
    assert c.flops == 2 * 8 * 16 * 16 * 3 * 3 * 3 == 110_592
    # fp16: input 3*16*16 + weight 8*3*3*3 read, output 8*16*16 written (strides/pads are parameters)
    assert c.bytes_read == (3 * 16 * 16 + 8 * 27) * 2
    assert c.bytes_written == 8 * 16 * 16 * 2
    (cb,) = _costs(_conv_program(bias=True))
    assert cb.flops == 110_592 + 8 * 16 * 16


def test_matmul_linear_elementwise_softmax_reduce_pool():
    mb, types = _mb()
    w = np.ones((5, 4), np.float16)

    @mb.program(
        input_specs=[mb.TensorSpec((2, 3, 4), dtype=types.fp16), mb.TensorSpec((2, 4, 6), dtype=types.fp16)]
    )
    def prog(a, b):
        m = mb.matmul(x=a, y=b)  # (2, 3, 6), K = 4
        lin = mb.linear(x=a, weight=w)  # (2, 3, 5)
        s = mb.softmax(x=m, axis=-1)
        r = mb.reduce_sum(x=s, axes=[-1])
        e = mb.add(x=m, y=s)
        p = mb.max_pool(
            x=mb.reshape(x=e, shape=[1, 2, 3, 6]), kernel_sizes=[2, 2], strides=[1, 1], pad_type="valid"
        )
        return lin, r, p

    by_type = {c.op_type: c for c in _costs(prog)}
    assert by_type["matmul"].flops == 2 * (2 * 3 * 6) * 4
    assert by_type["linear"].flops == 2 * (2 * 3 * 5) * 4 + 2 * 3 * 5  # the builder adds a zero bias
    assert by_type["softmax"].flops == flops.SOFTMAX_FLOPS_PER_ELEMENT * 36
    assert by_type["reduce_sum"].flops == 36
    assert by_type["add"].flops == 36
    assert by_type["max_pool"].flops == (1 * 2 * 2 * 5) * 4
    assert by_type["reshape"].flops == 0 and by_type["reshape"].known


def test_attention_flops():
    mb, types = _mb()
    from devicefit._lazy import coremltools

    spec = [mb.TensorSpec((1, 2, 8, 4), dtype=types.fp16) for _ in range(3)]

    @mb.program(input_specs=spec, opset_version=coremltools().target.iOS18)
    def prog(q, k, v):
        return mb.scaled_dot_product_attention(query=q, key=k, value=v)

    (c,) = _costs(prog)
    scores = 2 * 8 * 8  # heads x L x S
    assert c.flops == 2 * scores * 4 + 2 * scores * 4 + 5 * scores


def test_unknown_op_counts_bytes_only():
    mb, types = _mb()

    @mb.program(input_specs=[mb.TensorSpec((4, 4), dtype=types.fp32)])
    def prog(x):
        return mb.topk(x=x, k=2)[0]

    (topk,) = _costs(prog)
    assert not topk.known and topk.flops == 0 and topk.bytes_read == 4 * 4 * 4


def test_roofline_per_op_max_of_compute_and_memory():
    costs = [
        flops.OpCost("conv", "a", flops=10**12, bytes_read=10**6, bytes_written=0),  # compute-bound
        flops.OpCost("add", "b", flops=10, bytes_read=10**9, bytes_written=10**9),  # memory-bound
    ]
    dev = dataclasses.replace(
        get_device("mac-m1"), ne_tops=10.0, mem_bandwidth_gbps=100.0, gpu_fp32_tflops=2.0
    )
    b = roofline.latency_bounds(costs, dev)
    assert b.units["ne"].seconds == pytest.approx(1e12 / 10e12 + 2e9 / 100e9)
    assert b.units["gpu"].seconds == pytest.approx(1e12 / 2e12 + 2e9 / 100e9)
    assert b.units["cpu"].seconds == pytest.approx((1e6 + 2e9) / 100e9)  # no CPU peak: memory only
    assert (b.units["ne"].compute_bound_ops, b.units["ne"].memory_bound_ops) == (1, 1)
    assert b.best() is b.units["ne"]
    assert "at best 120 ms" in b.units["ne"].describe()


def test_roofline_on_a_real_device_and_caveats():
    b = roofline.latency_bounds(_conv_program(), "mac-m1")
    dev = get_device("mac-m1")
    (c,) = _costs(_conv_program())
    expected = max(c.flops / (dev.ne_tops * 1e12), c.bytes_moved / (dev.mem_bandwidth_gbps * 1e9))
    assert b.units["ne"].seconds == pytest.approx(expected)
    assert any("INT8" in a or "precision basis" in a for a in b.units["ne"].assumptions)
    assert any("lower bound" in a for a in b.assumptions)
    fp16_dev = roofline.unit_peaks(get_device("iphone-13"))["ne"]
    assert any("stated by Apple as FP16" in n for n in fp16_dev.notes)


def test_missing_figures_drop_terms_or_give_no_bound():
    b = roofline.latency_bounds(_conv_program(), "iphone-17-pro")  # no TOPS, no bandwidth
    assert all(u.seconds is None for u in b.units.values())
    assert b.best() is None and "no bound" in b.units["ne"].describe()


def test_bad_unit_is_input_error():
    with pytest.raises(InputError, match="unknown compute unit"):
        roofline.latency_bounds([], "mac-m1", units=("tpu",))


def test_einsum_flops_with_batch_dimensions():
    mb, types = _mb()

    spec = [mb.TensorSpec((2, 8, 16, 32), dtype=types.fp32), mb.TensorSpec((2, 32, 16, 4), dtype=types.fp32)]

    @mb.program(input_specs=spec)
    def prog(a, b):
        return mb.einsum(values=(a, b), equation="nchw,nwhu->nchu")

    (c,) = _costs(prog)
    # index space n, c, h, w, u = 2, 8, 16, 32, 4: one multiply-add per point
    assert c.flops == 2 * 2 * 8 * 16 * 32 * 4


def test_no_neural_engine_bound_where_core_ml_cannot_use_it():
    """Issue 12: iPhone 8 (A11) got a Neural Engine bound although Core ML cannot use the A11's NE."""
    iphone8 = get_device("iphone-8")
    assert (
        not iphone8.ne_usable_by_core_ml and "not usable by Core ML" in iphone8.sources["ne_tops_precision"]
    )
    assert get_device("iphone-12").ne_usable_by_core_ml
    b = roofline.latency_bounds(_conv_program(), "iphone-8")
    assert "ne" not in b.units and set(b.units) == {"gpu", "cpu"}
    assert any("Core ML cannot use" in a for a in b.assumptions)
    entry = roofline.latency_entry(b)
    assert entry["best"] is None or entry["best"]["unit"] != "ne"


def test_partial_bound_is_not_presented_as_comparable():
    """Issue 12: a bound missing its bandwidth term (4.74 ns) printed next to full ones (440 ns)."""
    from devicefit.report.devices import headline_text

    entry = roofline.latency_entry(roofline.latency_bounds(_conv_program(), "iphone-15-pro"))
    assert entry["best"]["partial"]
    text = headline_text(entry)
    assert "partial" in text and "at best" not in text and "not comparable" in text
    full = roofline.latency_entry(roofline.latency_bounds(_conv_program(), "iphone-15"))
    assert not full["best"]["partial"] and headline_text(full).startswith("at best ")
