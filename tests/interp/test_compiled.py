"""The compiled execution path (interp/compiled.py) against the plain interpreter, its reference.

Tolerance: none. The exact build (``exact=True``) runs the interpreter's own kernels (the same aten calls, the
same fp16 rounding nodes), so every output must equal the interpreter's bit for bit (NaNs equal), in fp32 and
fp16. The default build's rewrites, which have a stated tolerance, are tested in test_compiled_rewrites.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.interp.compiled import CompiledProgram, Specialization, compile_program
from devicefit.interp.lowerings import gather as gather_safe
from devicefit.interp.ops.indexing import gather as gather_reference
from tests.helpers import convert
from tests.zoo import ZOO, build

FAST_ZOO = {"resnet", "gru", "bert_encoder"}  # max_pool, a while_loop to unroll, a data-dependent gather


def assert_same(compiled: dict, reference: dict) -> None:
    assert set(compiled) == set(reference)
    for name, ref in reference.items():
        got = compiled[name]
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        assert np.array_equal(got, ref, equal_nan=ref.dtype.kind == "f"), f"output {name} differs"


def check_compiled(prog: interp.Program, feeds: dict, precision: str, exact: bool = True) -> CompiledProgram:
    compiled = compile_program(prog, precision, exact=exact)
    assert_same(compiled.run(feeds), prog.run(feeds, precision=precision))
    assert not compiled.fallbacks, [f.describe() for f in compiled.fallbacks]
    assert len(compiled.specializations) == 1
    return compiled


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, id=e.name, marks=() if e.name in FAST_ZOO else pytest.mark.slow) for e in ZOO],
)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_zoo_compiled_equals_interpreter(entry, precision):
    model, inputs = build(entry, batch=2)
    mlmodel = convert(model, inputs, target="iOS18", precision=precision, input_names=entry.input_names)
    prog = interp.load(mlmodel)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    compiled = check_compiled(prog, feeds, precision)
    # a second input of the same shape reuses the graph and still matches
    other = {n: np.asarray(v)[::-1].copy() for n, v in feeds.items()}
    assert_same(compiled.run(other), prog.run(other, precision=precision))
    assert len(compiled.specializations) == 1
    if entry.name == "gru":
        (spec,) = compiled.specializations
        assert spec.unrolled_loops and spec.unrolled_loops[0][1] == inputs[0].shape[1]


def _variants():
    from tests.interp.test_compression import VARIANTS

    fast = {"int8_per_channel", "palettize_4bit_kmeans"}
    return [pytest.param(name, marks=() if name in fast else pytest.mark.slow, id=name) for name in VARIANTS]


@pytest.mark.parametrize("variant", _variants())
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_compression_variants_compiled_equal_interpreter(variant, precision):
    from tests.interp.test_compression import VARIANTS, model_at

    spec = VARIANTS[variant]
    ml, x = model_at("cnn", spec.targets[-1], precision)
    prog = interp.load(spec.compress(ml))
    check_compiled(prog, {prog.inputs[0].name: x}, precision)


# ---------------------------------------------------------------- fallbacks
def _mil_model(build_fn, input_shapes, target="iOS17"):
    from devicefit._lazy import coremltools

    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    specs = [mb.TensorSpec(shape=s) for s in input_shapes]
    prog = mb.program(input_specs=specs, opset_version=getattr(ct.target, target))(build_fn)
    return interp.load(
        ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target))
    )


def test_data_dependent_loop_falls_back_and_says_why():
    from coremltools.converters.mil import Builder as mb

    def program(x):
        def cond(a):
            return mb.less(x=mb.reduce_sum(x=a, axes=[0]), y=100.0)

        def body(a):
            return mb.add(x=mb.mul(x=a, y=2.0), y=0.5)

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(x,))

    prog = _mil_model(program, [(3,)])
    compiled = compile_program(prog, "fp32")
    for x in ([1.0, 2.0, 3.0], [40.0, 50.0, 60.0]):
        feeds = {"x": np.array(x, dtype=np.float32)}
        assert_same(compiled.run(feeds), prog.run(feeds))
    (fallback,) = compiled.fallbacks
    assert fallback.op_type == "while_loop"
    assert "depends on the input data" in fallback.reason
    assert "while_loop" in fallback.describe() and "interpreter runs it" in fallback.describe()


def test_static_loop_is_unrolled():
    from coremltools.converters.mil import Builder as mb

    def program(x):
        def cond(i, a):
            return mb.less(x=i, y=5.0)

        def body(i, a):
            return mb.add(x=i, y=1.0), mb.tanh(x=mb.add(x=a, y=i))

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(mb.const(val=0.0), x))[1]

    prog = _mil_model(program, [(4,)])
    feeds = {"x": np.linspace(-1, 1, 4).astype(np.float32)}
    compiled = check_compiled(prog, feeds, "fp32")
    (spec,) = compiled.specializations
    assert [n for _, n in spec.unrolled_loops] == [5]


def test_endless_static_loop_reports_the_interpreter_error(monkeypatch):
    from coremltools.converters.mil import Builder as mb

    from devicefit.interp import specialize
    from devicefit.interp.ops import control_flow

    monkeypatch.setattr(control_flow, "MAX_LOOP_ITERATIONS", 50)
    monkeypatch.setattr(specialize, "MAX_UNROLLED_ITERATIONS", 20)

    def program(x):
        def cond(i, a):
            return mb.less(x=i, y=5.0)

        def body(i, a):
            return mb.mul(x=i, y=1.0), mb.tanh(x=a)

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(mb.const(val=0.0), x))[1]

    prog = _mil_model(program, [(4,)])
    compiled = compile_program(prog, "fp32")
    with pytest.raises(interp.InputError, match="endless"):
        compiled.run({"x": np.zeros(4, dtype=np.float32)})
    (fallback,) = compiled.fallbacks
    assert fallback.op_type == "while_loop" and "iterations to unroll" in fallback.reason


def test_unexpected_failure_while_specialising_falls_back(monkeypatch):
    from devicefit.interp import specialize

    entry = next(e for e in ZOO if e.name == "bert_encoder")
    model, inputs = build(entry, batch=1)
    prog = interp.load(
        convert(model, inputs, target="iOS18", precision="fp32", input_names=entry.input_names)
    )
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    bad = {**feeds, "ids": np.full_like(feeds["ids"], 10_000)}
    compiled = compile_program(prog, "fp32")
    # a bad input on the first call: the interpreter's error, and nothing cached for the shape
    with pytest.raises(interp.InputError, match="out of range"):
        compiled.run(bad)
    assert not compiled.specializations and not compiled.fallbacks

    def broken(self, feeds):
        raise RuntimeError("kernel exploded\nsecond line")

    monkeypatch.setattr(specialize.Specializer, "run", broken)
    assert_same(compiled.run(feeds), prog.run(feeds))
    (fallback,) = compiled.fallbacks
    assert fallback.reason == "specialising failed: RuntimeError: kernel exploded"


def test_data_dependent_attribute_falls_back():
    from coremltools.converters.mil import Builder as mb

    def program(x, n):
        begin = mb.cast(x=mb.reduce_max(x=n, axes=[0], keep_dims=True), dtype="int32")
        return mb.slice_by_index(x=x, begin=begin, end=[4], end_mask=[True])

    prog = _mil_model(program, [(4,), (1,)])
    compiled = compile_program(prog, "fp32")
    feeds = {"x": np.arange(4, dtype=np.float32), "n": np.array([1.0], dtype=np.float32)}
    assert_same(compiled.run(feeds), prog.run(feeds))
    (fallback,) = compiled.fallbacks
    assert fallback.op_type == "slice_by_index"


# ---------------------------------------------------------------- cache per shape, threads
def test_one_graph_per_input_shape():
    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU()).eval()
    x = torch.randn(1, 4, 8)
    shape = ct.Shape((1, ct.RangeDim(lower_bound=2, upper_bound=16, default=4), 8))
    traced = torch.jit.trace(model, x)
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=shape)], convert_to="mlprogram")
    prog = interp.load(mlmodel)
    compiled = CompiledProgram(prog, "fp32", max_signatures=2)
    feeds = {
        n: {"x": np.random.default_rng(n).standard_normal((1, n, 8)).astype(np.float32)} for n in (3, 5, 7)
    }
    for n in (3, 5, 3):
        assert_same(compiled.run(feeds[n]), prog.run(feeds[n]))
    first = compiled.specializations
    assert sorted(s.signature[0][1] for s in first) == [(1, 3, 8), (1, 5, 8)]
    compiled.run(feeds[3])
    assert compiled.specializations[0] is next(s for s in first if s.signature[0][1] == (1, 5, 8))
    assert_same(compiled.run(feeds[7]), prog.run(feeds[7]))  # evicts the least recently used (length 5)
    assert sorted(s.signature[0][1] for s in compiled.specializations) == [(1, 3, 8), (1, 7, 8)]

    # compile_after=2: the first call with a shape runs on the interpreter, the second compiles
    lazy = CompiledProgram(prog, "fp32", compile_after=2)
    for n in (3, 5, 3):
        assert_same(lazy.run(feeds[n]), prog.run(feeds[n]))
    assert [s.signature[0][1] for s in lazy.specializations] == [(1, 3, 8)]


def test_two_threads_run_compiled_graphs_concurrently():
    entry = next(e for e in ZOO if e.name == "resnet")
    model, inputs = build(entry, batch=1)
    prog = interp.load(
        convert(model, inputs, target="iOS18", precision="fp16", input_names=entry.input_names)
    )
    compiled = compile_program(prog, "fp16", exact=True)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal(inputs[0].shape).astype(np.float32)} for _ in range(4)]
    expected = [prog.run(f, precision="fp16") for f in feeds]
    compiled.run(feeds[0])
    errors: list[str] = []

    def worker(k: int) -> None:
        for i in range(12):
            j = (i + k) % len(feeds)
            got = compiled.run(feeds[j])
            if not all(np.array_equal(got[n], expected[j][n]) for n in got):
                errors.append(f"thread {k} request {i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert isinstance(compiled.specializations[0], Specialization)
    assert compiled.specializations[0].graph is not None  # a TorchScript graph: called without the GIL


# ---------------------------------------------------------------- trace-safe kernels
@pytest.mark.parametrize("negative_wraps", [True, False])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_trace_safe_gather_matches_reference(axis, negative_wraps):
    x = torch.randn(5, 6, 7)
    size = x.shape[axis]
    indices = torch.tensor([[0, size - 1], [3, 1], [2, 1]], dtype=torch.int32)
    if negative_wraps:
        indices[1] = torch.tensor([-1, -size])
    args = {"axis": axis, "negative_wraps": negative_wraps}
    assert torch.equal(gather_safe(x, indices, **args), gather_reference(x, indices, **args))
    bad_values = (size, -size - 1) if negative_wraps else (size, -1)
    for bad in bad_values:
        with pytest.raises(interp.InputError):
            gather_reference(x, torch.tensor([bad]), **args)
        with pytest.raises((IndexError, RuntimeError)):  # aten's bounds check, never a made-up value
            gather_safe(x, torch.tensor([bad]), **args)


def test_trace_safe_variants_follow_the_opset_kernel():
    from devicefit.interp import lowerings
    from devicefit.interp.ops import indexing

    assert lowerings.trace_safe(indexing.gather) is lowerings.gather
    assert lowerings.trace_safe(indexing.gather_ios17) is lowerings.gather_ios17
    assert lowerings.trace_safe(indexing.non_zero) is None  # a data-dependent shape: no trace holds it
    x, idx = torch.randn(4, 3), torch.tensor([-1])
    with pytest.raises(interp.InputError):
        indexing.gather_ios17(x, idx)
    with pytest.raises((IndexError, RuntimeError)):
        lowerings.gather_ios17(x, idx)


def test_out_of_range_token_reports_the_interpreter_error():
    entry = next(e for e in ZOO if e.name == "bert_encoder")
    model, inputs = build(entry, batch=1)
    prog = interp.load(
        convert(model, inputs, target="iOS18", precision="fp32", input_names=entry.input_names)
    )
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    compiled = check_compiled(prog, feeds, "fp32")
    bad = dict(feeds)
    bad["ids"] = feeds["ids"].copy()
    bad["ids"][0, 0] = 10_000
    with pytest.raises(interp.InputError, match="out of range"):
        prog.run(bad)
    with pytest.raises(interp.InputError, match="out of range"):
        compiled.run(bad)
    # a negative token: whatever the reference does with it (the iOS18 conversion wraps it before the
    # gather), the compiled path does the same
    bad["ids"][0, 0] = -1
    try:
        expected = prog.run(bad)
    except interp.InputError as e:
        with pytest.raises(interp.InputError, match=str(e)[:20]):
            compiled.run(bad)
    else:
        assert_same(compiled.run(bad), expected)


def test_engine_uses_the_compiled_path(tmp_path):
    import devicefit

    entry = next(e for e in ZOO if e.name == "resnet")
    model, inputs = build(entry, batch=1)
    pkg = tmp_path / "m.mlpackage"
    convert(model, inputs, target="iOS18", precision="fp32", input_names=entry.input_names).save(str(pkg))
    feeds = {"x": inputs[0].numpy()}
    with (
        devicefit.load(pkg, engine="interp", cache=False) as fast,
        devicefit.load(pkg, engine="interp", cache=False, compiled=False) as plain,
    ):
        assert_same(fast.predict(feeds), plain.predict(feeds))
        assert fast.engine.compiled is not None and not fast.engine.compiled.specializations
        assert_same(fast.predict(feeds), plain.predict(feeds))  # the second call with a shape compiles it
        assert len(fast.engine.compiled.specializations) == 1
        assert plain.engine.compiled is None
        assert not fast.engine.compiled.exact  # the engine's default: rewrites within the stated tolerance
    with devicefit.load(pkg, engine="interp", cache=False, exact=True) as exact:
        exact.predict(feeds)
        assert exact.engine.compiled is not None and exact.engine.compiled.exact


def test_graph_runs_in_the_grad_mode_it_was_checked_in():
    # TorchScript optimises a graph differently with grad enabled; the LSTM's graph then gave other bits
    # than the no_grad run the compile-time check had compared (caught at batch 1, fp32).
    entry = next(e for e in ZOO if e.name == "lstm")
    model, inputs = build(entry, batch=1)
    prog = interp.load(
        convert(model, inputs, target="iOS18", precision="fp32", input_names=entry.input_names)
    )
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    compiled = check_compiled(prog, feeds, "fp32", exact=True)
    assert torch.is_grad_enabled()
    for _ in range(3):
        assert_same(compiled.run(feeds), prog.run(feeds))


class _Band(torch.nn.Module):
    def __init__(self, lower: int, upper: int):
        super().__init__()
        self.lower, self.upper = lower, upper

    def forward(self, x):
        # triu / tril convert to band_part with one side unbounded (-1)
        y = torch.triu(x, self.upper) if self.upper is not None else x
        return torch.tril(y, self.lower) if self.lower is not None else y


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize(("lower", "upper"), [(None, -1), (1, None), (2, 0)])
def test_band_part_compiles(lower, upper, precision):
    # the differential fuzzer (tests/interp/difffuzz.py, seed 7) found triu falling back to the interpreter: the
    # kernel's `(lower < 0) | mask` traced as bitwise_or(Tensor, bool), which TorchScript's alias analysis rejects
    x = torch.randn(2, 3, 5, 4)
    prog = interp.load(convert(_Band(lower, upper), x, target="iOS17", precision=precision))
    check_compiled(prog, {"x": x.numpy()}, precision)
