"""Control flow and lists: scripted torch loops / ifs (while_loop, cond) against PyTorch, and a MIL program
with list ops (make_list, list_write in a loop, list_scatter, list_length, list_gather, list_read) against
numpy, both through a saved ML Program."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError
from devicefit.interp.ops import control_flow
from tests.helpers import rel_error


class DataDependentLoop(torch.nn.Module):
    """The trip count of the while loop and the branch taken both depend on the input values."""

    def forward(self, x):
        y = x * 1.0
        while y.sum() < 100.0:
            y = y * 2.0 + 0.5
        if y.mean() > 60.0:
            y = y - 3.0
        else:
            y = y + 3.0
        return y


class ForLoop(torch.nn.Module):
    """A for loop whose trip count is an input value."""

    def forward(self, x, n):
        y = x
        for _ in range(int(n.item())):
            y = torch.tanh(y) + x
        return y


def _convert_scripted(ct, module, inputs, target="iOS16"):
    scripted = torch.jit.script(module.eval())
    model = ct.convert(
        scripted,
        inputs=inputs,
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, target),
        compute_precision=ct.precision.FLOAT32,
    )
    return scripted, interp.load(model)


@pytest.fixture(scope="module")
def loop_model():
    from devicefit._lazy import coremltools

    ct = coremltools()
    return _convert_scripted(ct, DataDependentLoop(), [ct.TensorType(name="x", shape=(2, 3))])


@pytest.mark.parametrize("fill", [0.01, 1.0, 30.0, 200.0])  # 0 to many iterations, both branches
def test_while_and_cond_match_torch(loop_model, fill):
    scripted, prog = loop_model
    assert {"while_loop", "cond"} <= set(prog.op_counts)
    x = np.full((2, 3), fill, np.float32)
    x[0, 0] += 1.0
    out = prog.run({"x": x}, strict=True)[prog.outputs[0].name]
    assert rel_error(out, scripted(torch.from_numpy(x)).numpy()) <= 1e-6


def test_loop_intermediates_and_fp16(loop_model):
    scripted, prog = loop_model
    x = np.full((2, 3), 1.0, np.float32)
    out = prog.run({"x": x}, intermediates=True)
    # values computed inside the loop body are reported too (their last iteration's value)
    (loop,) = [s for s in prog.plan.block.steps if s.op_type == "while_loop"]
    body_values = {n for b in loop.ctx.blocks for t in b.steps for n in t.outputs}
    assert body_values and body_values <= set(out)
    out16 = prog.run({"x": x}, precision="fp16")[prog.outputs[0].name]
    assert rel_error(out16, scripted(torch.from_numpy(x)).numpy()) <= 1e-2


def test_input_driven_trip_count(ct):
    torch.manual_seed(0)
    scripted, prog = _convert_scripted(
        ct,
        ForLoop(),
        [ct.TensorType(name="x", shape=(3,)), ct.TensorType(name="n", shape=(1,), dtype=np.int32)],
    )
    assert "while_loop" in prog.op_counts
    x = np.array([0.3, -1.0, 2.0], np.float32)
    results = set()
    for n in (0, 1, 5):
        out = prog.run({"x": x, "n": np.array([n], np.int32)})[prog.outputs[0].name]
        expected = scripted(torch.from_numpy(x), torch.tensor([n], dtype=torch.int32)).numpy()
        assert rel_error(out, expected) <= 1e-6
        results.add(out.tobytes())
    assert len(results) == 3  # the trip count really changed the result


def test_endless_loop_is_stopped(loop_model, monkeypatch):
    _, prog = loop_model
    monkeypatch.setattr(control_flow, "MAX_LOOP_ITERATIONS", 1000)
    with pytest.raises(InputError, match=r"while_loop .* ran 1000 iterations"):
        prog.run({"x": np.full((2, 3), -5.0, np.float32)})  # y -> -inf, never reaches sum >= 100


@pytest.fixture(scope="module")
def list_program():
    """Rows of x scaled by their index, appended to a list in a while loop; then scatter / gather / read."""
    from coremltools.converters.mil import Builder as mb

    from devicefit._lazy import coremltools

    ct = coremltools()

    @mb.program(input_specs=[mb.TensorSpec(shape=(4, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        ls = mb.make_list(init_length=0, dynamic_length=True, elem_shape=[3], dtype="fp32")

        def cond(i, ls):
            return mb.less(x=i, y=np.int32(4))

        def body(i, ls):
            row = mb.mul(x=mb.gather(x=x, indices=i, axis=0), y=mb.cast(x=i, dtype="fp32"))
            return mb.add(x=i, y=np.int32(1)), mb.list_write(ls=ls, index=mb.list_length(ls=ls), value=row)

        _, ls = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), ls))
        first_row = mb.slice_by_index(x=x, begin=[0, 0], end=[1, 3])
        ls = mb.list_scatter(ls=ls, indices=np.array([1], np.int32), value=first_row)
        everything = mb.range_1d(start=np.int32(0), end=mb.list_length(ls=ls), step=np.int32(1))
        return mb.list_gather(ls=ls, indices=everything, name="gathered"), mb.list_read(
            ls=ls, index=np.int32(2), name="third"
        )

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16)
    return interp.load(model)


def test_list_ops_match_numpy(list_program):
    prog = list_program
    assert {"make_list", "list_write", "list_length", "list_scatter", "list_gather", "list_read"} <= set(
        prog.op_counts
    )
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    expected = x * np.arange(4, dtype=np.float32)[:, None]
    expected[1] = x[0]
    out = prog.run({"x": x})
    np.testing.assert_allclose(out["gathered"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["third"], expected[2], rtol=1e-6)


def test_list_kernel_edges():
    ls = control_flow.make_list(elem_shape=[torch.tensor([2])], init_length=2, dynamic_length=False)
    # an element never written reads as zeros of the element shape
    assert torch.equal(control_flow.list_read(ls, 1), torch.zeros(2))
    written = control_flow.list_write(ls, 0, torch.ones(2))
    assert torch.equal(control_flow.list_read(written, 0), torch.ones(2))
    assert ls.items[0] is None  # writes return a new list; the input list is unchanged
    with pytest.raises(InputError, match="fixed length 2"):
        control_flow.list_write(ls, 2, torch.ones(2))
    with pytest.raises(InputError, match="has 2 elements"):
        control_flow.list_read(ls, 5)
    grown = control_flow.list_write(control_flow.make_list(elem_shape=["s"], init_length=0), 2, torch.ones(3))
    assert int(control_flow.list_length(grown)) == 3
    with pytest.raises(InputError, match="no static shape"):
        control_flow.list_read(grown, 0)
