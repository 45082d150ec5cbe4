"""An op that raises while running: the package's or the user's fault (exit 2) versus devicefit's (exit 3).

Loading re-infers every op's types with coremltools and refuses a package whose declared types disagree, so a
valid op that fails on inputs matching its static types is a kernel bug (interp/failures.py has the rule).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.cli import main
from devicefit.interp import registry
from tests.helpers import convert


class _ReluBias(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 4)
        self.bias = torch.nn.Parameter(torch.randn(2, 4))

    def forward(self, x):
        return torch.relu(self.fc(x)) + self.bias


def _with_provenance(module: torch.nn.Module, x: torch.Tensor):
    from devicefit.convert.provenance import attach, collect

    mlmodel = convert(module, x)
    attach(mlmodel, collect(mlmodel, module))
    return mlmodel


def _patch_kernel(monkeypatch, op_type: str, fn) -> None:
    """Replace ``op_type``'s kernels by ``fn`` (before loading: a plan binds its kernels at load time)."""
    kernels = [dataclasses.replace(k, fn=fn) for k in registry._KERNELS[op_type]]
    monkeypatch.setitem(registry._KERNELS, op_type, kernels)


@pytest.fixture()
def package(tmp_path):
    path = tmp_path / "relu_bias.mlpackage"
    _with_provenance(_ReluBias().eval(), torch.randn(2, 4)).save(str(path))
    return path


def test_kernel_failing_on_a_valid_program_is_a_devicefit_bug(package, monkeypatch, capsys):
    def broken_relu(x):
        raise RuntimeError("simulated kernel bug")

    _patch_kernel(monkeypatch, "relu", broken_relu)
    program = interp.load(str(package))
    with pytest.raises(interp.KernelFailedError, match="match the program's declared types") as info:
        program.run({"x": np.ones((2, 4), np.float32)})
    message = str(info.value)
    assert "op 'relu'" in message
    assert "simulated kernel bug" in message
    assert not isinstance(info.value, interp.OpFailedError)  # not the user's fault
    # the CLI: internal error, one line, exit 3
    assert main(["run", str(package)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error: KernelFailedError" in err, err


def test_failure_names_the_pytorch_origin(package, monkeypatch):
    def broken_relu(x):
        raise RuntimeError("simulated kernel bug")

    _patch_kernel(monkeypatch, "relu", broken_relu)
    program = interp.load(str(package))
    with pytest.raises(interp.KernelFailedError) as info:
        program.run({"x": np.ones((2, 4), np.float32)})
    # leads with the PyTorch source line of the failing op (the relu in forward), then the MIL op
    message = str(info.value)
    assert "test_kernels_failures.py:" in message.split("op 'relu'")[0], message


def test_failure_with_a_stored_constant_cannot_blame_devicefit(package, monkeypatch, capsys):
    # `+ self.bias` reads a stored tensor: a damaged package can hold one its op cannot use and still load
    def broken_add(x, y):
        raise RuntimeError("simulated failure")

    _patch_kernel(monkeypatch, "add", broken_add)
    program = interp.load(str(package))
    with pytest.raises(interp.OpFailedError, match=r"stored constant\(s\) 'y' \(.*, 2x4\) may be damaged"):
        program.run({"x": np.ones((2, 4), np.float32)})
    assert main(["run", str(package)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_wrong_shape_from_an_upstream_kernel_names_that_kernel(package, monkeypatch):
    def short_relu(x):
        return torch.relu(x)[..., :2]  # a kernel bug: drops half the features

    _patch_kernel(monkeypatch, "relu", short_relu)
    program = interp.load(str(package))
    with pytest.raises(
        interp.KernelFailedError, match=r"is 2x2 where its type is 2x4: the kernel of .*'relu'"
    ):
        program.run({"x": np.ones((2, 4), np.float32)}, strict=False)  # a user's run: found downstream
    with pytest.raises(
        interp.DeclaredTypeError, match=r"declared \(2, 4\) but computes \(2, 2\).*short_relu"
    ):
        program.run({"x": np.ones((2, 4), np.float32)}, strict=True)  # a strict run: at the kernel itself


def test_flexible_inputs_of_inconsistent_sizes_are_bad_input(tmp_path, capsys):
    import coremltools as ct

    class Add(torch.nn.Module):
        def forward(self, a, b):
            return a * 2.0 + b

    example = (torch.randn(1, 5), torch.randn(1, 5))
    inputs = [
        ct.TensorType(name="a", shape=(1, ct.RangeDim(1, 16, 5))),
        ct.TensorType(name="b", shape=(1, ct.RangeDim(1, 16, 5))),
    ]
    mlmodel = convert(Add().eval(), example, inputs=inputs)
    program = interp.load(mlmodel)
    feeds = {"a": np.ones((1, 5), np.float32), "b": np.ones((1, 7), np.float32)}  # each within its range
    with pytest.raises(interp.OpFailedError, match="check the shapes you feed"):
        program.run(feeds)
    path = tmp_path / "add.mlpackage"
    mlmodel.save(str(path))
    np.save(tmp_path / "a.npy", feeds["a"])
    np.save(tmp_path / "b.npy", feeds["b"])
    argv = ["run", str(path), "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "check the shapes you feed" in err, err


def test_package_whose_declared_types_were_edited_is_refused_at_load(tmp_path):
    import coremltools as ct

    from devicefit.errors import ModelLoadError

    mlmodel = convert(_ReluBias().eval(), torch.randn(2, 4))
    spec = mlmodel.get_spec()
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    relu = next(op for op in block.operations if op.type == "relu")
    relu.outputs[0].type.tensorType.dimensions[1].constant.size = 3  # declared 2x3: not what relu gives
    edited = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    with pytest.raises(ModelLoadError):
        interp.load(edited)


def _fill_from_input(tmp_path):
    """A program whose ``fill`` takes its shape from an int32 input: the caller decides how much it allocates."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec(shape=(2,), dtype=types.int32)], opset_version=ct.target.iOS16)
    def prog(s):
        return mb.reduce_sum(x=mb.fill(shape=s, value=1.0), axes=[0, 1])

    package = tmp_path / "fill.mlpackage"
    ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT32,
    ).save(str(package))
    return package


def test_an_op_asked_for_more_memory_than_exists_is_bad_input_not_a_kernel_bug(tmp_path, capsys):
    # 2^30 x 2^20 floats = 4 PiB: the allocator refuses at once (nothing is touched); it was reported as
    # "a devicefit kernel bug" (KernelFailedError, exit 3) because the op's inputs match their declared types
    package = _fill_from_input(tmp_path)
    program = interp.load(str(package))
    small = program.run({"s": np.array([3, 4], np.int32)})
    assert float(next(iter(small.values()))) == 12.0
    with pytest.raises(interp.OpFailedError, match=r"fill.*memory.*4 PiB|fill.*4 PiB.*memory") as info:
        program.run({"s": np.array([2**30, 2**20], np.int32)})
    assert "input" in str(info.value)  # says what to check
    np.save(tmp_path / "s.npy", np.array([2**30, 2**20], np.int32))
    assert main(["run", str(package), "--input", f"s={tmp_path / 's.npy'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "memory" in err
