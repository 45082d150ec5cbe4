"""The compiled path's inexact rewrites (interp/rewrites.py, rewrite_rows.py, half_pass.py) against the interpreter.

Tolerance (stated in interp/rewrites.py): per output, max |compiled - interpreter| <= RTOL * max |interpreter|
with RTOL = 2**-16 in fp32 and 2**-8 in fp16 emulation; NaN and inf only where the interpreter has them.
``exact=True`` applies none of these rewrites and stays bit-identical (tests/interp/test_compiled.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from devicefit import interp
from devicefit.interp import compiled as compiled_mod
from devicefit.interp.agreement import same_array
from devicefit.interp.compiled import compile_program
from devicefit.interp.half_pass import HALF_OPS
from devicefit.interp.rewrites import FP16_RTOL, FP32_RTOL, RewriteStats
from devicefit.interp.specialize import FnEntry, Slot
from tests.helpers import convert
from tests.zoo import ZOO, build

RTOL = {"fp32": FP32_RTOL, "fp16": FP16_RTOL}


def assert_close(got: dict, ref: dict, precision: str) -> None:
    assert set(got) == set(ref)
    for name in ref:
        assert same_array(np.asarray(got[name]), np.asarray(ref[name]), RTOL[precision]), name


def _zoo_program(name: str, batch: int, precision: str):
    entry = next(e for e in ZOO if e.name == name)
    model, inputs = build(entry, batch=batch)
    mlmodel = convert(model, inputs, target="iOS18", precision=precision, input_names=entry.input_names)
    return interp.load(mlmodel), {n: t.numpy() for n, t in zip(entry.input_names, inputs)}


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_recurrent_zoo_models_rewritten_within_tolerance(name, precision, batch):
    prog, feeds = _zoo_program(name, batch, precision)
    fast, exact = compile_program(prog, precision), compile_program(prog, precision, exact=True)
    reference = prog.run(feeds, precision=precision)
    assert_close(fast.run(feeds), reference, precision)
    other = {n: np.asarray(v)[::-1].copy() for n, v in feeds.items()}
    assert_close(fast.run(other), prog.run(other, precision=precision), precision)
    exact.run(feeds)
    assert not fast.fallbacks and not exact.fallbacks
    (spec,), (plain,) = fast.specializations, exact.specializations
    assert plain.rewrites is None and plain.half_ops == 0
    if name == "gru":  # the rewrites fire: fewer kernel calls and graph nodes than the exact build
        stats = spec.rewrites
        assert stats is not None
        # 3 gate input projections batched over 12 steps; the hidden projections (a recurrence) are not
        assert (stats.batched_projections, stats.projections_batched) == (3, 36)
        assert stats.merged_linears == 11 and stats.rows_forwarded == 11 and stats.write_chains_collapsed == 1
        # per step: the state update (1 - z) * n + z * h and n's x + r * h_n; fp16 emulation is not fused
        fused = 12 if precision == "fp32" else 0
        assert (stats.lerps, stats.addcmuls) == (fused, fused)
        assert spec.ops < plain.ops
        assert spec.passes is not None and plain.passes is not None
        assert spec.passes.nodes_after < 0.75 * plain.passes.nodes_after
        assert (spec.half_ops > 0) == (precision == "fp16")


class _GatedRNN(nn.Module):
    """A hand-written gated recurrence (a Python loop, unrolled by the trace) with two heads on the state."""

    def __init__(self):
        super().__init__()
        self.ih, self.hh, self.gate = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.a, self.b = nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.zeros(x.shape[0], 8)
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(self.ih(x[:, t]) + self.hh(h)) * torch.sigmoid(self.gate(h))
            outs.append(self.a(h) * self.b(h))
        return torch.stack(outs, 1)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_loop_projections_batched_and_shared_input_linears_merged(precision):
    torch.manual_seed(0)
    model = _GatedRNN().eval()
    x = torch.randn(2, 5, 6)
    prog = interp.load(convert(model, (x,), target="iOS18", precision=precision, input_names=["x"]))
    feeds = {"x": x.numpy()}
    fast, exact = compile_program(prog, precision), compile_program(prog, precision, exact=True)
    assert_close(fast.run(feeds), prog.run(feeds, precision=precision), precision)
    exact.run(feeds)
    (spec,), (plain,) = fast.specializations, exact.specializations
    stats = spec.rewrites
    assert stats is not None
    # ih(x_t), a(h_t) and b(h_t) over the 5 steps: one call each (their inputs never depend on their
    # outputs); hh and gate feed the recurrence: not batched, but merged where they read the same h (t >= 1;
    # at t = 0 h is a constant and both are folded)
    assert (stats.batched_projections, stats.projections_batched) == (3, 15)
    assert (stats.merged_linears, stats.linears_merged) == (4, 8)
    assert spec.ops == plain.ops - 15 + 3 - 8 + 4


class _Gates(nn.Module):
    def __init__(self):
        super().__init__()
        self.z, self.u = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x, h):
        z = torch.sigmoid(self.z(x))
        n = torch.tanh(x + z * self.u(h))  # x + u * v
        return (1 - z) * n + z * h  # lerp(n, h, z)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_elementwise_chains_fused_in_fp32_only(precision):
    torch.manual_seed(0)
    x, h = torch.randn(3, 8), torch.randn(3, 8)
    prog = interp.load(
        convert(_Gates().eval(), (x, h), target="iOS18", precision=precision, input_names=["x", "h"])
    )
    feeds = {"x": x.numpy(), "h": h.numpy()}
    fast = compile_program(prog, precision)
    assert_close(fast.run(feeds), prog.run(feeds, precision=precision), precision)
    (spec,) = fast.specializations
    if precision == "fp32":
        assert spec.rewrites is not None and (spec.rewrites.lerps, spec.rewrites.addcmuls) == (1, 1)
    else:  # the interpreter rounds every intermediate in fp16: nothing fused
        assert spec.rewrites is None or (spec.rewrites.lerps, spec.rewrites.addcmuls) == (0, 0)


def test_a_rewrite_outside_the_tolerance_falls_back_to_the_exact_graph(monkeypatch):
    prog, feeds = _zoo_program("gru", 1, "fp32")
    real = compiled_mod.rewrite_tape

    def off_by_one(tape):
        real(tape)
        first = tape.outputs[0]
        assert isinstance(first, Slot)
        wrong = tape.new_slot()
        tape.entries.append(FnEntry(lambda v: (v + 1.0,), [first], [wrong], "deliberately wrong"))
        tape.outputs[0] = Slot(wrong)
        return RewriteStats(merged_linears=1)

    monkeypatch.setattr(compiled_mod, "rewrite_tape", off_by_one)
    fast = compile_program(prog, "fp32")
    got = fast.run(feeds)
    reference = prog.run(feeds)
    for name in reference:
        assert np.array_equal(got[name], reference[name])
    (spec,) = fast.specializations
    assert spec.rewrites is None  # the exact graph


def test_exact_build_still_cleans_the_graph():
    prog, feeds = _zoo_program("gru", 1, "fp16")
    exact = compile_program(prog, "fp16", exact=True)
    got, reference = exact.run(feeds), prog.run(feeds, precision="fp16")
    assert all(np.array_equal(got[n], reference[n]) for n in reference)
    (spec,) = exact.specializations
    assert spec.passes is not None and spec.passes.shapes_folded > 0
    assert spec.passes.nodes_after < spec.passes.nodes_before / 2


# ---------------------------------------------------------------- the claim half_arithmetic rests on
_ALL_HALF = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.float16)
_UNARY = {
    "aten::sigmoid": torch.sigmoid,
    "aten::tanh": torch.tanh,
    "aten::relu": torch.relu,
    "aten::neg": torch.neg,
}
_BINARY = {"aten::add": torch.add, "aten::sub": torch.sub, "aten::mul": torch.mul, "aten::div": torch.div}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    nan = a.isnan() & b.isnan()
    return bool(((a.view(torch.int16) == b.view(torch.int16)) | nan).all())


def test_every_half_op_is_covered_here():
    assert set(_UNARY) | set(_BINARY) == set(HALF_OPS)


@pytest.mark.parametrize("op", sorted(_UNARY))
def test_half_unary_kernel_rounds_its_float32_result(op):
    fn = _UNARY[op]
    # every fp16 value, in tensors of several lengths and offsets (vectorised body and scalar tail)
    for length in (7, 24, 33, 72, 1000, _ALL_HALF.numel()):
        for offset in (0, 3):
            rolled = _ALL_HALF.roll(offset)
            usable = rolled.numel() // length * length
            x = rolled[:usable].reshape(-1, length)
            assert _same_bits(fn(x), fn(x.float()).half()), (op, length, offset)
    strided = _ALL_HALF.reshape(-1, 64)[:, ::2]
    assert _same_bits(fn(strided), fn(strided.float()).half())


@pytest.mark.parametrize("op", sorted(_BINARY))
def test_half_binary_kernel_rounds_its_float32_result(op):
    fn = _BINARY[op]
    gen = torch.Generator().manual_seed(0)
    a = _ALL_HALF[torch.randint(0, 65536, (1 << 20,), generator=gen)]
    b = _ALL_HALF[torch.randint(0, 65536, (1 << 20,), generator=gen)]
    assert _same_bits(fn(a, b), fn(a.float(), b.float()).half())
    # broadcast against a row and a 0-dim constant, as the graphs use them
    row, scalar = b[:24], torch.tensor(1.0, dtype=torch.float16)
    grid = a[: 24 * 1000].reshape(1000, 24)
    assert _same_bits(fn(grid, row), fn(grid.float(), row.float()).half())
    assert _same_bits(fn(scalar, grid), fn(scalar.float(), grid.float()).half())
