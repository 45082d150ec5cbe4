"""Engines agree with each other; state and input checks; coreml says why it is unavailable."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.engines import EngineStateError, EngineUnavailableError, availability, create, resolve_auto
from devicefit.errors import InputError, ModelLoadError


def test_engines_agree(small_net, small_pkg, small_onnx, small_feeds, cache):
    with create("torch", small_net, example_inputs=small_feeds) as e:
        ref = next(iter(e.predict(small_feeds).values()))
    results = {}
    for name, model in (("interp", small_pkg), ("onnxruntime", small_onnx), ("onnxruntime", small_net)):
        with create(
            name, model, cache=cache, example_inputs=small_feeds if model is small_net else None
        ) as e:
            results[f"{name}-{type(model).__name__}"] = next(iter(e.predict(small_feeds).values()))
    assert ref.shape == (1, 5)
    for key, out in results.items():
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5, err_msg=key)
    with create("interp", small_pkg, precision="fp16", cache=False) as e:
        fp16 = next(iter(e.predict(small_feeds).values()))
    # an fp32-typed program computes in fp32 even in fp16 mode: the engine must pass precision through
    np.testing.assert_allclose(fp16.astype(np.float32), ref, rtol=1e-4, atol=1e-5)


def test_torchscript_file(small_net, small_feeds, tmp_path):
    import torch

    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(small_net, torch.from_numpy(small_feeds["x"])), str(path))
    assert resolve_auto(path) == "torch"
    with create("auto", path) as e:
        assert [s.name for s in e.inputs] == ["x"]
        out = e.predict(small_feeds)["output"]
    np.testing.assert_allclose(out, small_net(torch.from_numpy(small_feeds["x"])).detach().numpy(), rtol=1e-5)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="not a TorchScript file"):
        create("torch", bad).load()


def test_state_and_timings(small_pkg, small_feeds, cache):
    e = create("interp", small_pkg, cache=cache)
    with pytest.raises(EngineStateError, match="not loaded"):
        e.predict(small_feeds)
    e.load()
    e.predict(small_feeds)
    e.predict(small_feeds)
    assert e.timings.predict_count == 2 and e.timings.load_s > 0 and e.timings.cache_hit is False
    e.unload()
    with pytest.raises(EngineStateError):
        e.predict(small_feeds)
    e.load()  # reloadable, now from the cache
    assert e.timings.cache_hit is True


@pytest.mark.parametrize(
    "feeds, match",
    [
        ({"y": np.zeros((1, 3, 8, 8), np.float32)}, "unknown input 'y'"),
        ({}, "missing input"),
        ({"x": np.zeros((1, 3, 9, 8), np.float32)}, "has shape 1x3x9x8"),
        ({"x": np.array([["a"]])}, "has dtype"),
        ([1, 2], "must be a dict"),
    ],
)
def test_bad_inputs_one_line(small_pkg, small_onnx, feeds, match, cache):
    for name, model in (("interp", small_pkg), ("onnxruntime", small_onnx)):
        with create(name, model, cache=cache) as e:
            with pytest.raises(InputError, match=match) as info:
                e.predict(feeds)
            assert "\n" not in str(info.value)


def test_coreml_unavailable_on_linux(small_pkg):
    import platform

    if platform.system() == "Darwin":
        pytest.skip("native Core ML is available on macOS")
    (av,) = availability("coreml")
    assert not av.available and "macOS" in av.reason and "interp" in av.reason
    with pytest.raises(EngineUnavailableError, match="needs macOS"):
        create("coreml", small_pkg).load()
    assert resolve_auto(small_pkg) == "interp"


def test_bad_options():
    with pytest.raises(InputError, match="compute_units"):
        create("interp", "m.mlpackage", compute_units="gpu")
    with pytest.raises(InputError, match="unknown engine"):
        create("tensorrt", "m.onnx")
    with pytest.raises(InputError, match="cannot pick an engine"):
        resolve_auto("model.bin")


def test_batch_stacks_when_batch_axis_is_free(small_onnx, small_pkg, small_feeds, cache):
    rng = np.random.default_rng(1)
    batch = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(5)]
    with (
        create("onnxruntime", small_onnx, cache=cache) as ort_e,
        create("interp", small_pkg, cache=cache) as it,
    ):
        assert ort_e.batch_capacity() is None and it.batch_capacity() == 1
        stacked = ort_e.predict_batch(batch)
        assert ort_e.timings.predict_count == 1  # one engine call for the batch
        looped = it.predict_batch(batch)
        assert it.timings.predict_count == 5
    for a, b in zip(stacked, looped):
        np.testing.assert_allclose(next(iter(a.values())), next(iter(b.values())), rtol=1e-4, atol=1e-5)


def test_batch_falls_back_per_sample_when_the_model_refuses_a_stack():
    """A model that declares a free batch axis but hard-codes batch 1 (``x.view(1, -1)``) still batches.

    Stacking is an optimisation: the torch engine's batch axis is free, so ``predict_batch`` stacks; the forward
    then fails on the stack. The library answer is N single calls (as for a fixed batch), not a PredictionError.
    """
    import torch

    import devicefit

    class Batch1(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(12, 3)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.fc(x.view(1, -1))

    torch.manual_seed(0)
    net = Batch1().eval()
    x = np.random.RandomState(0).randn(1, 3, 4).astype(np.float32)
    batch = [{"x": x * (i + 1)} for i in range(4)]
    with devicefit.load(net, engine="torch", example_inputs={"x": x}) as handle:
        net.calls = 0
        got = handle.predict_batch(batch)
        again = handle.predict_batch(batch)
        calls = net.calls
    assert len(got) == 4
    for feeds, out, out2 in zip(batch, got, again):
        ref = net(torch.from_numpy(feeds["x"])).detach().numpy()
        np.testing.assert_allclose(next(iter(out.values())), ref, rtol=1e-6)
        np.testing.assert_array_equal(next(iter(out2.values())), next(iter(out.values())))
    # the refused stack is remembered: the second batch goes straight to single calls (one failed stack, 4 + 4)
    assert calls == 9


def test_batch_raises_the_single_call_error_when_every_sample_fails():
    """A stack refused AND a single sample refused: the error is the sample's, not the stack's."""
    import torch

    import devicefit
    from devicefit.runtime import PredictionError

    class Picky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if float(x.sum()) > 1e6:
                raise ValueError("value too large for this model")
            return x.view(1, -1) * 2

    x = np.ones((1, 4), np.float32)
    with devicefit.load(Picky(), engine="torch", example_inputs={"x": x}) as handle:
        with pytest.raises(PredictionError, match="value too large"):
            handle.predict_batch([{"x": x}, {"x": x * 1e7}])


def test_module_engines_name_outputs_alike_and_cast_to_the_declared_dtype():
    """One engine protocol: the same nn.Module answers under the same output names on torch and onnxruntime
    (onnxruntime said '3', the exporter's value number), and both take integer data for a float input (as
    onnxruntime and the interpreter do; the torch engine failed in its forward: 'Long and Float')."""
    import torch

    import devicefit

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.fc(x)
            return y, y.softmax(-1)

    torch.manual_seed(0)
    one = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    x = np.ones((1, 4), np.float32)
    for net, names in ((one, ["output"]), (Two().eval(), ["output_0", "output_1"])):
        outs = {}
        for engine in ("torch", "onnxruntime"):
            with devicefit.load(net, engine=engine, example_inputs={"x": x}, cache=False) as handle:
                outs[engine] = handle.predict({"x": x.astype(np.int64)})
        assert list(outs["torch"]) == names and list(outs["onnxruntime"]) == names
        for name in names:
            np.testing.assert_allclose(outs["onnxruntime"][name], outs["torch"][name], rtol=1e-5, atol=1e-6)


def test_torch_engine_runs_a_half_precision_model_in_fp32(tmp_path):
    """A model saved in fp16 (a TorchScript file) or held in bf16 runs at fp32 precision (the default) on float16
    or float32 data: it failed in its first layer ('expected scalar type Float but found Half'). The caller's own
    module is not changed."""
    import torch

    import devicefit

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16, 2)
    )
    x = np.random.RandomState(0).randn(1, 3, 4, 4).astype(np.float32)
    path = tmp_path / "half.pt"
    torch.jit.save(torch.jit.trace(net.eval().half(), torch.from_numpy(x).half()), str(path))
    want = net.float()(torch.from_numpy(x)).detach().numpy()
    with devicefit.load(str(path), engine="torch", example_inputs={"x": x.astype(np.float16)}) as handle:
        out = next(iter(handle.predict({"x": x.astype(np.float16)}).values()))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=2e-2, atol=2e-2)  # the weights were rounded to fp16 when saved
    bf16 = net.to(torch.bfloat16)
    with devicefit.load(bf16, engine="torch", example_inputs={"x": x}) as handle:
        out = next(iter(handle.predict({"x": x}).values()))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert next(bf16.parameters()).dtype == torch.bfloat16  # the caller's module is left as it was
