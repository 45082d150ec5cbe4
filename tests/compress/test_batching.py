"""Batched candidate evaluation (issue 13): several samples per interpreter run when the program allows it,
the same metrics as one run per sample, and a probe that refuses programs whose batch axis is not free."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import compress, interp
from devicefit.compress.batching import Batching, choose_batching, run_samples
from devicefit.compress.budget import measure, noise, per_sample
from devicefit.errors import InputError
from devicefit.interp.stacked import run_stacked, run_vmapped
from tests import zoo
from tests.helpers import convert
from tests.interp import milprog

_MODELS: dict[str, tuple] = {}


def _mlmodel(name: str, precision: str = "fp16"):
    if (name, precision) not in _MODELS:
        module, inputs = zoo.build(zoo.BY_NAME[name])
        _MODELS[name, precision] = (convert(module, inputs, target="iOS18", precision=precision), inputs)
    return _MODELS[name, precision][0]


def _zoo_program(name: str, n: int, seed: int = 0):
    """(fp32 program, fp16 program, n random samples) of a zoo model converted at batch 1."""
    p32, p16 = interp.load(_mlmodel(name, "fp32")), interp.load(_mlmodel(name))
    inputs = _MODELS[name, "fp16"][1]
    rng = np.random.default_rng(seed)
    feeds = [
        {p32.inputs[0].name: rng.standard_normal(tuple(inputs[0].shape)).astype(np.float32)} for _ in range(n)
    ]
    return p32, p16, feeds


@pytest.mark.parametrize(
    ("model", "mode"),
    # resnet slow (the fast suite's 15-minute budget, 2026-12-02): mobilenet_v2 covers the same path
    [("mobilenet_v2", "vmap"), pytest.param("resnet", "vmap", marks=pytest.mark.slow)],
)
def test_batched_metrics_equal_per_sample_metrics_on_zoo_models(model, mode):
    # both packages declare batch 1: never stacked beyond it (resnet's flatten even became a reshape to [1, 64]);
    # vmap runs every kernel at one sample's shapes
    p32, p16, feeds = _zoo_program(model, 12)
    batching = choose_batching(p16, feeds, max_chunk=5)  # 5: chunks of 5, 5 and a remainder of 2
    assert (batching.mode, batching.chunk) == (mode, 5), batching.reason
    assert "stack: not tried" in batching.reason
    reference = run_samples(p32, feeds, "fp32")
    first = p32.outputs[0].name
    one = run_samples(p16, feeds, "fp32")
    many = run_samples(p16, feeds, "fp32", batching)
    assert one[first].shape == many[first].shape == (12, 1, 10)
    np.testing.assert_allclose(many[first], one[first], rtol=0, atol=1e-5 * np.abs(one[first]).max())
    # fp16: a batched conv may sum in another order and round a value to the neighbouring float16, so the
    # metrics agree to about one fp16 step, not bit for bit
    one16, many16 = run_samples(p16, feeds, "fp16"), run_samples(p16, feeds, "fp16", batching)
    np.testing.assert_allclose(many16[first], one16[first], rtol=0, atol=2e-3 * np.abs(one16[first]).max())
    cos = [measure("cosine", out, reference, None, first) for out in (one16, many16)]
    assert cos[0] == pytest.approx(cos[1], abs=1e-6)
    # the uncompressed fp16 model's error *is* fp16 rounding (~80 dB), so another summation order moves it
    psnr = [measure("psnr", out, reference, None, first) for out in (one16, many16)]
    assert psnr[0] == pytest.approx(psnr[1], abs=0.5)
    # a compressed candidate's error is the compression's: there the two modes agree tightly
    small = interp.load(compress.palettize(_mlmodel(model), compress.PalettizeConfig(nbits=4)))
    one4, many4 = run_samples(small, feeds, "fp16"), run_samples(small, feeds, "fp16", batching)
    for metric in ("cosine", "psnr"):
        a, b = measure(metric, one4, reference, None, first), measure(metric, many4, reference, None, first)
        assert a == pytest.approx(b, rel=1e-4), metric
        np.testing.assert_allclose(
            per_sample(metric, many4, reference, None, first),
            per_sample(metric, one4, reference, None, first),
            rtol=2e-3,  # one sample's value may still move by a flipped fp16 rounding (seen: 8e-4)
        )
    assert noise(many4, reference) == pytest.approx(noise(one4, reference), rel=1e-3)


def _probe(fn, example: dict[str, np.ndarray], n: int = 6) -> Batching:
    prog = interp.load(milprog.convert(fn, example))
    rng = np.random.default_rng(0)
    name, value = next(iter(example.items()))
    if value.dtype.kind == "f":
        feeds = [{name: rng.standard_normal(value.shape).astype(np.float32)} for _ in range(n)]
    else:
        feeds = [{name: rng.integers(0, 10, value.shape).astype(np.int32)} for _ in range(n)]
    return choose_batching(prog, feeds)


def test_probe_never_stacks_beyond_the_declared_batch():
    from coremltools.converters.mil import Builder as mb

    # a hard-coded batch of one: stacking 6 samples would reach the reshape with 6x the elements
    batching = _probe(
        lambda x: mb.reshape(x=mb.relu(x=x), shape=[1, 24]), {"x": np.zeros((1, 4, 6), np.float32)}
    )
    assert batching.mode == "vmap"
    assert "stack: not tried, the package declares no batch of that size" in batching.reason


class _Center(torch.nn.Module):
    def forward(self, x):  # zero for one sample, but mixes samples stacked on axis 0 (runs without error)
        return x - x.mean(dim=0, keepdim=True)


def test_probe_refuses_stacking_an_op_that_mixes_samples():
    from devicefit._lazy import coremltools

    ct = coremltools()
    # the package declares a flexible batch, so stacking is tried; the per-sample comparison refuses it
    shape = ct.Shape((ct.RangeDim(lower_bound=1, upper_bound=64, default=1), 8))
    mlmodel = convert(_Center().eval(), torch.zeros(1, 8), inputs=[ct.TensorType(name="x", shape=shape)])
    prog = interp.load(mlmodel)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(6)]
    batching = choose_batching(prog, feeds)
    assert batching.mode == "vmap"
    assert "refused stack: output" in batching.reason and "differs from the per-sample run" in batching.reason


def test_probe_falls_back_to_one_run_per_sample_when_neither_mode_is_valid():
    from coremltools.converters.mil import Builder as mb

    table = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)

    # a hard-coded batch (no stacking) after a gather_nd whose bounds check reads indices into Python (no vmap)
    def embed(ids):
        return mb.reshape(x=mb.gather_nd(x=table, indices=mb.expand_dims(x=ids, axes=[-1])), shape=[1, 32])

    batching = _probe(embed, {"ids": np.zeros((1, 4), np.int32)})
    assert (batching.mode, batching.chunk) == ("per-sample", 1)
    assert "stack: not tried" in batching.reason and "vmap: op 'gather_nd'" in batching.reason
    assert "the program is invalid" not in batching.reason  # the probe's failures are not the user's errors


def test_token_gather_runs_under_vmap_and_still_refuses_indices_out_of_range():
    from coremltools.converters.mil import Builder as mb

    table = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)

    def embed(ids):  # an embedding lookup, then a hard-coded batch 1: a token model's first layers
        return mb.reshape(x=mb.gather(x=table, indices=ids, axis=0), shape=[1, 32])

    prog = interp.load(milprog.convert(embed, {"ids": np.zeros((1, 4), np.int32)}))
    rng = np.random.default_rng(0)
    feeds = [{"ids": rng.integers(0, 10, (1, 4)).astype(np.int32)} for _ in range(6)]
    batching = choose_batching(prog, feeds)
    assert batching.mode == "vmap", batching.reason
    out = run_samples(prog, feeds, "fp32", batching)[prog.outputs[0].name]
    np.testing.assert_array_equal(out, np.stack([table[f["ids"][0]].reshape(1, 32) for f in feeds]))
    # past the end; and below -10 (the converter wraps negatives with select ops, iOS17's gather refuses the rest)
    for bad in (10, -11):
        ids = [dict(f) for f in feeds]
        ids[3] = {"ids": np.array([[1, bad, 2, 3]], np.int32)}
        with pytest.raises(InputError, match="out of range"):
            prog.run(ids[3])
        # torch's own error (IndexError / RuntimeError): never a silent read of another row
        with pytest.raises(Exception, match=r"out of (range|bounds)"):
            run_vmapped(prog, ids)


def test_stacked_run_frees_axis_0_only_and_vmap_stacks_on_a_new_axis():
    from coremltools.converters.mil import Builder as mb

    prog = interp.load(milprog.convert(lambda x: mb.relu(x=x), {"x": np.zeros((1, 3), np.float32)}))
    x = np.arange(12, dtype=np.float32).reshape(4, 3) - 6
    name, out = prog.inputs[0].name, prog.outputs[0].name
    np.testing.assert_array_equal(run_stacked(prog, {name: x})[out], np.maximum(x, 0))
    with pytest.raises(InputError, match="shape 4x4"):
        run_stacked(prog, {name: np.zeros((4, 4), np.float32)})
    with pytest.raises(InputError, match="shape 4x3"):
        prog.run({name: x})  # the public run still checks the declared shape
    got = run_vmapped(prog, [{name: row[None]} for row in x])[out]
    assert got.shape == (4, 1, 3)
    np.testing.assert_array_equal(got[:, 0], np.maximum(x, 0))
    with pytest.raises(InputError, match="shape 2x3"):
        run_vmapped(prog, [{name: x[:2]}])  # each sample is validated against the declared shape


def test_cli_no_batch_evaluates_one_sample_per_run(tmp_path, capsys):
    import json

    from devicefit.cli import main as cli_main

    report = tmp_path / "r.json"
    argv = [
        "compress",
        "--budget",
        "cosine>=0.99",
        "--samples",
        "12",
        "--min-elements",
        "64",
        "--bits",
        "4,8",
    ]
    assert cli_main([*argv, "--no-batch", "--json", str(report)]) == 0
    got = json.loads(report.read_text())
    assert got["batching"]["mode"] == "per-sample" and "batching probe" not in got["timings"]
    assert "evaluation: per-sample (one run per sample)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("batch_dim", "mode", "expect"),
    [("range", "stack", "the declared inputs take 6 samples"), ("enumerated", "vmap", "vmap over 6 samples")],
)
def test_probe_stacks_a_package_declaring_a_flexible_batch(batch_dim, mode, expect):
    import torch

    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)
    )
    if batch_dim == "range":
        shape = ct.Shape((ct.RangeDim(lower_bound=1, upper_bound=64, default=1), 3, 8, 8))
    else:  # batch 1 or 4 only: 6 stacked samples are outside the declaration, so vmap
        shape = ct.EnumeratedShapes(shapes=[(1, 3, 8, 8), (4, 3, 8, 8)], default=(1, 3, 8, 8))
    prog = interp.load(
        convert(module, torch.randn(1, 3, 8, 8), inputs=[ct.TensorType(name="x", shape=shape)])
    )
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(6)]
    batching = choose_batching(prog, feeds)
    assert (batching.mode, batching.chunk) == (mode, 6) and batching.reason.startswith(expect), (
        batching.reason
    )
    np.testing.assert_allclose(
        run_samples(prog, feeds, "fp32", batching)[prog.outputs[0].name],
        run_samples(prog, feeds, "fp32")[prog.outputs[0].name],
        rtol=1e-5,
        atol=1e-6,
    )


def test_probe_refuses_an_lstm_without_crashing():
    # stacked on axis 0 the lstm got a batch of 6 against a constant initial state of batch 1, and torch's
    # fused lstm crashed the process (segfault): the kernel now checks that, and the probe never stacks a
    # package that declares batch 1; vmap has no batching rule for the fused lstm
    _, p16, feeds = _zoo_program("lstm", 6)
    batching = choose_batching(p16, feeds)
    assert batching.mode == "per-sample"
    assert "stack: not tried" in batching.reason and "vmap: " in batching.reason
