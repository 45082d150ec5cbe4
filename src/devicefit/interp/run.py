"""The interpreter loop and the public Program object.

One flat loop over a block's prepared steps (as ONNX's ``ReferenceEvaluator.run``): gather the kernel's
arguments from the environment, call it, round fp16-typed outputs when emulating fp16, store the outputs.
SSA names are unique in a program, so nested blocks (while_loop / cond) share one environment.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from devicefit.errors import DevicefitError, InputError, KernelMissingError, ModelLoadError, first_line
from devicefit.interp import dtypes
from devicefit.interp.compile import compile_function
from devicefit.interp.failures import op_failure
from devicefit.interp.inputs import check_generated_size, input_array, validate_input
from devicefit.interp.plan import Block, FunctionPlan, TensorSpec
from devicefit.interp.program import load_pymil
from devicefit.interp.step import (
    STRICT_TYPES_ENV,
    KernelContractError,
    KernelFailedError,
    TypeMismatch,
    call_step,
    held_output,
    strict_by_default,
    type_mismatches,
    wrong_count,
)

PRECISIONS = ("fp32", "fp16")


class _Runner:
    """Executes a FunctionPlan for one call (holds the per-call environment)."""

    def __init__(
        self,
        plan: FunctionPlan,
        precision: str,
        strict: bool,
        states: dict[str, torch.Tensor],
        spec: Any = None,
    ):
        self.plan = plan
        self.spec = spec  # the package's Core ML spec: names a failing op's PyTorch origin
        self.precision = precision
        self.strict = strict
        self.states = states
        self.env: dict[str, Any] = dict(plan.constants)
        self.outputs: list[Any] = []

    def run_block(self, block: Block, inputs: list[Any]) -> list[Any]:
        env = self.env
        fp16 = self.precision == "fp16"
        strict = self.strict
        for name, value, dt in zip(block.inputs, inputs, block.input_dtypes):
            if fp16 and dt == "fp16" and isinstance(value, torch.Tensor):
                value = dtypes.round_fp16(value)
            env[name] = value
        try:
            for step in block.steps:
                # NOTE: the hot path. Most ops take constants + environment values and return one tensor;
                # they skip call_step's generality (attribute conversion, variadics, context).
                if step.simple:
                    kwargs = step.consts.copy()
                    for param, name in step.dyn:
                        kwargs[param] = env[name]
                    out = step.fn(**kwargs)
                    if step.single and type(out) is torch.Tensor and not strict:
                        if out.dtype != step.held0 and step.held0 is not None:
                            out = held_output(step, 0, out, strict)  # converts within a kind, raises across
                        env[step.out0] = (
                            dtypes.round_fp16_output(out, kwargs.values()) if fp16 and step.round0 else out
                        )
                        continue
                    if step.single and type(out) is not tuple:
                        out = (out,)
                    elif type(out) is not tuple or len(out) != len(step.outputs):
                        wrong_count(step, out)
                else:
                    out = call_step(step, env, self.precision, self.run_block, self.states)
                for i, name in enumerate(step.outputs):
                    value = held_output(step, i, out[i], strict)
                    if fp16 and i in step.round_fp16:
                        # a nested block may return any value it saw: never in place; and a small value is
                        # rounded the plain way before any aliasing list is built (this runs for every op)
                        if step.ctx.blocks or value.numel() < dtypes.IN_PLACE_MIN_ELEMENTS:
                            value = dtypes.round_fp16(value)
                        else:  # every value the step could have returned unchanged
                            given = [env.get(n) for n in step.reads()]
                            given += [*step.consts.values(), *self.states.values()]
                            value = dtypes.round_fp16_output(value, given)
                    env[name] = value
        except (DevicefitError, KernelContractError, KernelFailedError):
            raise
        except Exception as e:
            # NOTE: `step` is still bound to the op that failed; naming it is what makes this actionable. Whether
            # the program or a kernel is at fault is read off the values that reached it (interp/failures.py).
            raise op_failure(step, env, self.plan, e, self.spec) from e
        return [env[n] for n in block.outputs]


class Program:
    """A loaded ML Program function, ready to run.

    Attributes:
        inputs: input specs (name, dtype, shape, flexibility).
        outputs: output specs.
        states: state specs (stateful models).
        functions: names of all functions in the package.
        function: the name of the function this object runs.
        opset: the function's opset as an iOS number (16 for CoreML6 / iOS16).
    """

    def __init__(self, plan: FunctionPlan, functions: list[str], origin: str, spec: Any = None):
        self._plan = plan
        self.functions = functions
        self.origin = origin
        self.spec = spec

    # ----------------------------------------------------------- description
    @property
    def function(self) -> str:
        return self._plan.name

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._plan.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._plan.outputs

    @property
    def states(self) -> list[TensorSpec]:
        return self._plan.states

    @property
    def opset(self) -> int:
        return self._plan.opset

    @property
    def op_counts(self) -> dict[str, int]:
        """How many ops of each type the function has (``const`` included)."""
        return dict(self._plan.op_counts)

    @property
    def plan(self) -> FunctionPlan:
        return self._plan

    @property
    def pymil_function(self) -> Any:
        """The coremltools pymil Function this program was compiled from (for analysis passes)."""
        return self._plan.pymil_function

    @functools.cached_property
    def value_dtypes(self) -> dict[str, str | None]:
        """Declared MIL dtype of every value the program computes (inputs and op outputs, nested too)."""
        types: dict[str, str | None] = {s.name: s.dtype for s in self.inputs}

        def visit(block: Block) -> None:
            for name, dt in zip(block.inputs, block.input_dtypes):
                types[name] = dt
            for step in block.steps:
                types.update(zip(step.outputs, step.ctx.output_dtypes))
                for inner in step.ctx.blocks:
                    visit(inner)

        visit(self._plan.block)
        return types

    def describe(self) -> str:
        lines = [f"function {self.function!r} (opset iOS{self.opset}) of {self.origin}"]
        lines += ["  input  " + s.describe() for s in self.inputs]
        lines += ["  state  " + s.describe() for s in self.states]
        lines += ["  output " + s.describe() for s in self.outputs]
        return "\n".join(lines)

    def example_inputs(self, seed: int = 0, max_bytes: int | None = None) -> dict[str, np.ndarray]:
        """Random inputs matching the input specs at their default shapes.

        Args:
            seed: random seed (the same seed gives the same inputs).
            max_bytes: the largest input to generate, in bytes (default: ``DEVICEFIT_MAX_INPUT_BYTES`` or
                256 MiB), so a description declaring a huge shape cannot exhaust memory.

        Raises:
            InputError: an input's default shape is over ``max_bytes`` (naming the input and the override).
        """
        rng = np.random.default_rng(seed)
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            shape = spec.shape or ()
            check_generated_size(spec, shape, max_bytes)
            if dtypes.is_float(spec.dtype):
                feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
            elif spec.dtype == "bool":
                feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feeds[spec.name] = rng.integers(0, 8, shape).astype(np.int32)
        return feeds

    def new_states(self) -> dict[str, np.ndarray]:
        """Zero-initialised states for a stateful program."""
        return {s.name: np.zeros(s.shape or (), dtype=np.float32) for s in self.states}

    # ----------------------------------------------------------- running
    def run(
        self,
        inputs: Mapping[str, Any],
        precision: str = "fp32",
        intermediates: bool = False,
        states: Mapping[str, Any] | None = None,
        strict: bool | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the function.

        Args:
            inputs: input name -> array. Floats of any width are accepted for float inputs.
            precision: ``"fp32"`` computes every float in float32; ``"fp16"`` rounds every value the program
                types as fp16 to float16 after each op, as the GPU / Neural Engine would store it.
            intermediates: also return every named value the program computes (op outputs), by name.
            states: initial state values for a stateful program (zeros when omitted). The returned dict
                then also holds each state's final value under the state's name.
            strict: also check each op output against its declared static shape as it is computed, nested
                blocks' every iteration included, raising DeclaredTypeError at the first mismatch (the output's
                kind, float / int / bool, is always checked). None (the default): on when the environment sets
                ``DEVICEFIT_STRICT_TYPES`` (the test suite does); off, the loop pays nothing for it.

        Returns:
            output name -> numpy array (float32 in fp32 mode; the declared dtype in fp16 mode). A rank-0
            output comes back with shape (1,), as the Core ML runtime returns it.

        Raises:
            InputError: a missing, unknown or malformed input (wrong kind, shape, integers out of range).
            OpFailedError: an op raised on values the program does not describe (names the op and its first
                output, and the PyTorch origin when the package records it).
            KernelFailedError: an op raised on values matching the program's declared types (a devicefit bug).
            KernelContractError: a kernel broke its contract (a devicefit bug).
            DeclaredTypeError: (strict) a value's shape is not its declared static shape.
        """
        if strict is None:
            strict = strict_by_default()
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        return self._execute(
            self._convert_inputs(inputs, precision), precision, intermediates, states, strict
        )

    def type_mismatches(
        self, inputs: Mapping[str, Any], states: Mapping[str, Any] | None = None
    ) -> list[TypeMismatch]:
        """Run in fp32 and list every op output whose computed shape is not its declared static shape.

        Unlike a strict run this does not stop at the first: it reads each value once the run is over (a
        loop body's values as of its last iteration).
        """
        runner = self._runner(self._convert_inputs(inputs, "fp32"), "fp32", states, False)
        shapes = {k: tuple(v.shape) for k, v in runner.env.items() if isinstance(v, torch.Tensor)}
        return type_mismatches(self._plan, shapes)

    def _runner(
        self, feeds: dict[str, torch.Tensor], precision: str, states: Mapping[str, Any] | None, strict: bool
    ) -> _Runner:
        runner = _Runner(self._plan, precision, strict, self._convert_states(states), self.spec)
        with torch.inference_mode():
            runner.outputs = self._run_main(runner, feeds)
        return runner

    def _execute(
        self,
        feeds: dict[str, torch.Tensor],
        precision: str,
        intermediates: bool = False,
        states: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> dict[str, np.ndarray]:
        runner = self._runner(feeds, precision, states, strict)
        outs, state_values = runner.outputs, runner.states
        result = {spec.name: output_to_numpy(v, spec, precision) for spec, v in zip(self.outputs, outs)}
        for name, value in state_values.items():
            result[name] = _to_numpy(value, next(s.dtype for s in self.states if s.name == name), precision)
        if intermediates:
            declared = self.value_dtypes if precision == "fp16" else {}
            for name, value in runner.env.items():
                if name in self._plan.constants or name in result or not isinstance(value, torch.Tensor):
                    continue
                # like outputs: fp16-typed values come back as float16 when emulating fp16
                result[name] = _to_numpy(value, declared.get(name), precision)
        return result

    def _run_main(self, runner: _Runner, feeds: dict[str, torch.Tensor]) -> list[Any]:
        block = self._plan.block
        values: list[Any] = []
        for name in block.inputs:
            if name in feeds:
                values.append(feeds[name])
            else:  # a state input: the kernels reach it through ctx.states
                values.append(runner.states.get(name))
        return runner.run_block(block, values)

    def _convert_inputs(
        self, inputs: Mapping[str, Any], precision: str, leading_free: bool = False
    ) -> dict[str, torch.Tensor]:
        if not isinstance(inputs, Mapping):
            raise InputError(f"inputs must be a dict of name -> array, got {type(inputs).__name__}")
        expected = {s.name: s for s in self.inputs}
        # NOTE: str() so that non-string keys ({0: x}) give this error rather than a TypeError from sorting.
        unknown = sorted(str(k) for k in set(inputs) - set(expected) - {s.name for s in self.states})
        if unknown:
            raise InputError(
                f"unknown input {unknown[0]!r}; the model's inputs are: "
                + ", ".join(s.describe() for s in self.inputs)
            )
        feeds: dict[str, torch.Tensor] = {}
        for name, spec in expected.items():
            if name not in inputs:
                raise InputError(f"missing input {spec.describe()}; pass it as {name}=<array>")
            feeds[name] = validate_input(spec, inputs[name], precision, leading_free)
        return feeds

    def _convert_states(self, states: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        given = dict(states or {})
        for spec in self.states:
            value = given.pop(spec.name, None)
            if value is None:
                value = np.zeros(spec.shape or (), dtype=np.float32)
            arr = input_array(spec, value, "state")
            if spec.shape is not None and tuple(arr.shape) != tuple(spec.shape):
                raise InputError(
                    f"state {spec.name!r} has shape {tuple(arr.shape)}, expected {tuple(spec.shape)}"
                )
            out[spec.name] = dtypes.to_held_tensor(arr, spec.dtype).clone()
        if given:
            raise InputError(
                f"unknown state {sorted(map(str, given))[0]!r}; states: {[s.name for s in self.states]}"
            )
        return out


def _to_numpy(value: Any, mil_dtype: str | None, precision: str) -> Any:
    if isinstance(value, torch.Tensor):
        # NOTE: detach() / cpu() only when needed: each is a torch call that releases and retakes the GIL, and
        # with worker threads and the event loop contending for it every such point can wait for another
        # thread's whole Python stretch (the usual outputs need neither: no grad, on the CPU)
        if value.requires_grad:
            value = value.detach()
        if not value.is_cpu:
            value = value.cpu()
        arr = value.numpy()
        if precision == "fp16" and mil_dtype == "fp16":
            return arr.astype(np.float16)
        # NOTE: always a copy: an output may be a view of a program constant or of the caller's input
        # (identity, reshape); writing into a returned array must not change later runs or the caller's data.
        return arr.copy()
    if isinstance(value, (str, dict, list)):
        return value
    return np.asarray(value)


def output_to_numpy(value: Any, spec: TensorSpec, precision: str) -> Any:
    """A model output as the Core ML runtime hands it back (numpy; a rank-0 tensor output has shape (1,))."""
    out = _to_numpy(value, spec.dtype, precision)
    if spec.kind == "tensor" and isinstance(out, np.ndarray) and out.ndim == 0:
        return out.reshape(1)
    return out


def load(source: Any, function: str | None = None) -> Program:
    """Load an ML Program for the interpreter.

    Args:
        source: a ``.mlpackage`` folder, an ``.mlmodel`` file, or an in-memory ``coremltools.models.MLModel``.
        function: for multi-function packages, the function to run (default: the package's default).

    Raises:
        ModelLoadError: missing, truncated or corrupted files, or not an ML Program.
        KernelMissingError: an op of the function has no kernel (all such ops are listed).
    """
    prog, spec, origin = load_pymil(source)
    names = sorted(prog.functions)  # the proto's function map has no stable order
    if not names:
        raise ModelLoadError(
            f"{origin} holds an ML Program with no functions; the package is corrupted, re-export it"
        )
    if function is None:
        default = spec.description.defaultFunctionName or "main"
        function = default if default in names else names[0]
    if function not in names:
        raise InputError(f"no function {function!r} in {origin}; its functions are: {', '.join(names)}")
    try:
        plan = compile_function(prog, spec, function)
    except (DevicefitError, KernelContractError):
        raise
    except Exception as e:
        # NOTE: coremltools accepted the program, so this is a malformed op (a corrupted or hand-made
        # package) or a devicefit bug; either way the user gets one line, with the cause chained for --debug.
        raise ModelLoadError(
            f"could not prepare function {function!r} of {origin}: {first_line(e)}; the program is malformed "
            "(re-export it), or this is a devicefit bug (rerun with --debug for the traceback)"
        ) from e
    return Program(plan, names, origin, spec)


__all__ = [
    "PRECISIONS",
    "STRICT_TYPES_ENV",
    "KernelContractError",
    "KernelMissingError",
    "ModelLoadError",
    "Program",
    "load",
]
