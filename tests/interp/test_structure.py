"""The interpreter's own structure: no import cycle between its modules, the registry refuses duplicates,
and the run loop refuses a kernel output of the wrong kind instead of coercing it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.interp import registry
from tests.helpers import convert

INTERP = Path(interp.__file__).parent


def _imports(path: Path) -> set[str]:
    """devicefit.interp modules a file imports, at any depth (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("devicefit.interp"):
            if node.module == "devicefit.interp":
                found.update(f"devicefit.interp.{a.name}" for a in node.names)
            else:
                found.add(node.module)
    return found


def test_no_import_cycle_between_interp_modules() -> None:
    # NOTE: ops/ (the kernels) is excluded: registry imports it lazily on purpose to register them.
    modules = {f"devicefit.interp.{p.stem}": p for p in INTERP.glob("*.py") if p.stem != "__init__"}
    graph = {m: {i for i in _imports(p) if i in modules} for m, p in modules.items()}
    done: set[str] = set()

    def visit(m: str, trail: list[str]) -> None:
        if m in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(m) :], m]))
        if m in done:
            return
        for dep in sorted(graph[m]):
            visit(dep, [*trail, m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_interp_modules_stay_small() -> None:
    for p in INTERP.glob("*.py"):
        assert len(p.read_text().splitlines()) <= 420, f"{p.name} has grown past ~400 lines; split it"


def test_duplicate_registration_raises_unless_override(monkeypatch) -> None:
    registry._ensure_loaded()
    monkeypatch.setitem(registry._KERNELS, "relu", list(registry._KERNELS["relu"]))
    original = registry.lookup("relu", 15)
    assert original is not None

    def relu_again(x):
        return torch.relu(x)

    with pytest.raises(ValueError, match=r"'relu' since opset 15 already has kernel .*override=True"):
        registry.register("relu", since=original.since)(relu_again)
    assert registry.lookup("relu", 15) is original
    registry.register("relu", since=original.since, override=True)(relu_again)
    kernel = registry.lookup("relu", 15)
    assert kernel is not None and kernel.fn is relu_again
    assert len([k for k in registry._KERNELS["relu"] if k.since == original.since]) == 1


class _Relu(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


@pytest.fixture(scope="module")
def relu_model():
    return convert(_Relu().eval(), torch.randn(2, 3), precision="fp32")


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    "wrong, got",
    [
        (lambda x: x > 0, "torch.bool"),  # bool for a float output
        (lambda x: x.to(torch.int32), "torch.int32"),  # int for a float output
        (lambda x: "relu", "str"),  # not a tensor at all
    ],
)
def test_wrong_kind_kernel_output_raises(monkeypatch, relu_model, wrong, got, strict) -> None:
    registry._ensure_loaded()
    monkeypatch.setitem(registry._KERNELS, "relu", [])
    registry.register("relu")(wrong)
    prog = interp.load(relu_model)
    relu_out = next(s.outputs[0] for s in prog.plan.block.steps if s.op_type == "relu")
    with pytest.raises(
        interp.KernelContractError, match=rf"returned {got} for output '{relu_out}' of op 'relu'.*fp32"
    ):
        prog.run({"x": np.ones((2, 3), np.float32)}, strict=strict)


def test_same_kind_kernel_output_is_converted(monkeypatch, relu_model) -> None:
    registry._ensure_loaded()
    monkeypatch.setitem(registry._KERNELS, "relu", [])
    registry.register("relu")(lambda x: torch.relu(x).to(torch.float64))
    prog = interp.load(relu_model)
    out = prog.run({"x": np.array([[1, -1, 2], [0, 3, -4]], np.float32)})
    (value,) = out.values()
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, [[2, 0, 4], [0, 6, 0]])
