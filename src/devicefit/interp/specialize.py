"""Partial evaluation of a plan for fixed input shapes: the flat "tape" the compiled path traces.

The plan is run once, concretely, on inputs of the shapes being specialised for, tracking which values depend
on the input *data* ("dynamic") and which depend only on constants and input *shapes* ("static"):

* a step whose inputs are all static is evaluated now and its outputs become constants (shape arithmetic,
  ``shape`` of any value, constant folding);
* a step with a dynamic input is appended to the tape, with its static inputs bound as constants;
* ``while_loop`` is unrolled when its condition is static (coremltools' GRU / RNN loops count up to a sequence
  length fixed by the input shape); ``cond`` is inlined when its predicate is static.

What cannot be lowered raises :class:`NotLowerable` naming the op and why (a loop whose trip count depends on
the data, a state update, a data-dependent attribute); the caller then falls back to the plain interpreter.

Every value the tape computes goes through exactly the casts and fp16 roundings of the interpreter loop
(``run.py``), so replaying the tape computes bit-identical values with the same kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from devicefit.interp import dtypes
from devicefit.interp.lowerings import CannotLower, trace_safe
from devicefit.interp.plan import Block, FunctionPlan, Step
from devicefit.interp.step import call_step, held_output

# Ops whose output depends only on the shape of their input (shapes are fixed per specialisation).
SHAPE_ONLY_OPS = frozenset({"shape"})
# Ops with side effects on the run's states: their order and aliasing are not captured by a trace.
STATEFUL_OPS = frozenset({"read_state", "coreml_update_state"})
# Unrolling stops here: past it the tape (and the trace) would be larger than running the loop in Python.
MAX_UNROLLED_STEPS = 200_000
MAX_UNROLLED_ITERATIONS = 100_000


class NotLowerable(Exception):
    """A program (for these input shapes) that the compiled path cannot run; the interpreter runs it.

    Attributes:
        op_type: the MIL op that could not be lowered (``""`` for whole-program reasons).
        op_name: that op's name in the program.
        reason: why, in words.
    """

    def __init__(self, op_type: str, op_name: str, reason: str):
        self.op_type = op_type
        self.op_name = op_name
        self.reason = reason
        where = f"op {op_type!r} ({op_name}): " if op_type else ""
        super().__init__(where + reason)


@dataclass(frozen=True)
class Slot:
    """A reference to a dynamic value: its index in the replay's value list."""

    index: int


@dataclass
class CallEntry:
    """One kernel call of the tape: its inputs bound to constants or slots, its outputs to slots."""

    step: Step
    env: dict[str, Any]  # MIL value name the step reads -> constant or Slot
    out_slots: list[int]


@dataclass
class RoundEntry:
    """fp16 rounding of a block input (the interpreter rounds fp16-typed block inputs on entry)."""

    src: int
    dst: int


@dataclass
class FnEntry:
    """A computation put in by a tape rewrite (``rewrites.py``): ``fn(*args)`` fills ``out_slots``.

    ``fn`` runs the interpreter's kernels and ``post_process`` itself, so the casts and fp16 roundings stay
    where the interpreter has them.
    """

    fn: Callable[..., Sequence[Any]]
    args: list[Any]  # constants or Slots
    out_slots: list[int]
    label: str


def entry_reads(entry: RoundEntry | FnEntry | CallEntry) -> list[int]:
    """The slots a tape entry reads (what graph rewrites follow to find producers and consumers)."""
    if isinstance(entry, RoundEntry):
        return [entry.src]
    if isinstance(entry, FnEntry):
        return [a.index for a in entry.args if isinstance(a, Slot)]
    return [v.index for v in entry.env.values() if isinstance(v, Slot)]


def entry_writes(entry: RoundEntry | FnEntry | CallEntry) -> list[int]:
    """The slots a tape entry writes."""
    return [entry.dst] if isinstance(entry, RoundEntry) else list(entry.out_slots)


@dataclass
class Tape:
    """A straight-line program over slots: inputs fill slots ``0..len(input_names)-1``."""

    precision: str
    input_names: list[str]
    entries: list[CallEntry | RoundEntry | FnEntry] = field(default_factory=list)
    slot_count: int = 0
    outputs: list[Any] = field(default_factory=list)  # per program output: a constant or a Slot
    unrolled_loops: list[tuple[str, int]] = field(default_factory=list)  # (while_loop name, iterations)
    # slot -> (shape, dtype) of the value it held while specialising (tensors only), for the rewrites
    meta: dict[int, tuple[tuple[int, ...], torch.dtype]] = field(default_factory=dict)

    def new_slot(self) -> int:
        self.slot_count += 1
        return self.slot_count - 1

    def note(self, slot: int, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            self.meta[slot] = (tuple(value.shape), value.dtype)

    def replay(self, inputs: Sequence[Any], on_entry: Callable[[CallEntry], None] | None = None) -> list[Any]:
        """Run the tape on ``inputs`` (one per input name); returns every program output."""
        slots: list[Any] = [None] * self.slot_count
        slots[: len(inputs)] = list(inputs)
        fp16 = self.precision == "fp16"
        for entry in self.entries:
            if isinstance(entry, RoundEntry):
                slots[entry.dst] = dtypes.round_fp16(slots[entry.src])
                continue
            if isinstance(entry, FnEntry):
                args = [slots[a.index] if isinstance(a, Slot) else a for a in entry.args]
                for slot, value in zip(entry.out_slots, entry.fn(*args)):
                    slots[slot] = value
                continue
            if on_entry is not None:
                on_entry(entry)
            env = {n: slots[v.index] if isinstance(v, Slot) else v for n, v in entry.env.items()}
            outs = call_step(entry.step, env, self.precision, _no_blocks, None)
            for slot, value in zip(entry.out_slots, post_process(entry.step, outs, fp16)):
                slots[slot] = value
        return [slots[o.index] if isinstance(o, Slot) else o for o in self.outputs]


def _no_blocks(*_: Any) -> list:
    raise RuntimeError("a nested block reached the tape; control flow is unrolled before tracing")


def post_process(step: Step, outs: tuple, fp16: bool) -> list[Any]:
    """The interpreter loop's treatment of a kernel's outputs: cast to the held dtype, round fp16 values."""
    values: list[Any] = []
    for i, value in enumerate(outs):
        value = held_output(step, i, value, strict=False)
        if fp16 and i in step.round_fp16:
            value = dtypes.round_fp16(value)
        values.append(value)
    return values


class Specializer:
    """Runs a plan concretely on example inputs while recording the data-dependent steps into a tape."""

    def __init__(self, plan: FunctionPlan, precision: str):
        self.plan = plan
        self.precision = precision
        self.fp16 = precision == "fp16"
        # name -> (concrete value, Slot or None when static)
        self.env: dict[str, tuple[Any, Slot | None]] = {k: (v, None) for k, v in plan.constants.items()}
        self.tape = Tape(precision, [])
        self.steps_recorded = 0

    def run(self, feeds: dict[str, torch.Tensor]) -> tuple[Tape, list[Any]]:
        """Specialise for ``feeds`` (converted input tensors); returns the tape and the concrete outputs."""
        if self.plan.states:
            raise NotLowerable("", "", "stateful programs are not compiled (state updates are side effects)")
        block = self.plan.block
        values: list[tuple[Any, Slot | None]] = []
        for name in block.inputs:
            if name not in feeds:
                raise NotLowerable("", "", f"main block input {name!r} is not a model input")
            self.tape.input_names.append(name)
            slot = Slot(self.tape.new_slot())
            values.append((feeds[name], slot))
            self.tape.note(slot.index, feeds[name])
        outs = self.run_block(block, values)
        self.tape.outputs = [slot if slot is not None else value for value, slot in outs]
        return self.tape, [value for value, _ in outs]

    def run_block(self, block: Block, inputs: list[tuple[Any, Slot | None]]) -> list[tuple[Any, Slot | None]]:
        for name, (value, slot), dt in zip(block.inputs, inputs, block.input_dtypes):
            if self.fp16 and dt == "fp16" and isinstance(value, torch.Tensor):
                value = dtypes.round_fp16(value)
                if slot is not None:
                    dst = self.tape.new_slot()
                    self.tape.entries.append(RoundEntry(slot.index, dst))
                    self.tape.note(dst, value)
                    slot = Slot(dst)
            self.env[name] = (value, slot)
        for step in block.steps:
            if step.op_type == "while_loop":
                self._while_loop(step)
            elif step.op_type == "cond":
                self._cond(step)
            else:
                self._call(step)
        return [self.env[n] for n in block.outputs]

    # ------------------------------------------------------------------ one op
    def _reads(self, step: Step) -> dict[str, tuple[Any, Slot | None]]:
        names = [n for _, n in step.dyn]
        for _, items in step.variadic:
            names.extend(n for n, _ in items if n is not None)
        return {n: self.env[n] for n in names}

    def _call(self, step: Step) -> None:
        if step.op_type in STATEFUL_OPS:
            raise NotLowerable(
                step.op_type, step.name, "state reads and updates are side effects a trace loses"
            )
        reads = self._reads(step)
        dynamic = step.op_type not in SHAPE_ONLY_OPS and any(s is not None for _, s in reads.values())
        if dynamic:
            data_attrs = {p for p, _ in step.dyn_attrs}
            for param, name in step.dyn:
                if param in data_attrs and reads[name][1] is not None:
                    raise NotLowerable(
                        step.op_type,
                        step.name,
                        f"its {param!r} is computed from the input data but the kernel needs it as a Python "
                        "value (a data-dependent attribute)",
                    )
        if not dynamic:
            concrete = {n: v for n, (v, _) in reads.items()}
            outs = post_process(step, call_step(step, concrete, self.precision, _no_blocks, None), self.fp16)
            for name, value in zip(step.outputs, outs):
                self.env[name] = (value, None)
            return
        step, outs = _call_tainted(step, reads, self.precision, self.fp16)
        self.steps_recorded += 1
        if self.steps_recorded > MAX_UNROLLED_STEPS:
            raise NotLowerable(
                step.op_type, step.name, f"more than {MAX_UNROLLED_STEPS} ops after unrolling loops"
            )
        slots = [self.tape.new_slot() for _ in step.outputs]
        bound = {n: (s if s is not None else v) for n, (v, s) in reads.items()}
        self.tape.entries.append(CallEntry(step, bound, slots))
        for name, value, slot in zip(step.outputs, outs, slots):
            self.env[name] = (value, Slot(slot))
            self.tape.note(slot, value)

    # ------------------------------------------------------------------ control flow
    def _while_loop(self, step: Step) -> None:
        from devicefit.interp.ops.control_flow import _truth

        cond_block, body_block = step.ctx.blocks
        ((_, items),) = step.variadic
        values = [self.env[n] if n is not None else (c, None) for n, c in items]
        iterations = 0
        while True:
            pred, pred_slot = self.run_block(cond_block, values)[0]
            if pred_slot is not None:
                raise NotLowerable(
                    step.op_type,
                    step.name,
                    "its condition depends on the input data, so the trip count is not fixed by the input shapes",
                )
            if not _truth(pred):
                break
            values = self.run_block(body_block, values)
            iterations += 1
            if iterations > MAX_UNROLLED_ITERATIONS:  # the interpreter reports an endless loop itself
                raise NotLowerable(
                    step.op_type, step.name, f"more than {MAX_UNROLLED_ITERATIONS} iterations to unroll"
                )
        self.tape.unrolled_loops.append((step.name, iterations))
        self._bind_outputs(step, values)

    def _cond(self, step: Step) -> None:
        from devicefit.interp.ops.control_flow import _truth

        if "pred" in step.consts:
            pred, pred_slot = step.consts["pred"], None
        else:
            pred, pred_slot = self.env[dict(step.dyn)["pred"]]
        if pred_slot is not None:
            raise NotLowerable(step.op_type, step.name, "its predicate depends on the input data")
        branch = step.ctx.blocks[0] if _truth(pred) else step.ctx.blocks[1]
        self._bind_outputs(step, self.run_block(branch, []))

    def _bind_outputs(self, step: Step, values: list[tuple[Any, Slot | None]]) -> None:
        """A control-flow op's outputs, through the loop's casts and roundings (a pass-through entry if dynamic)."""
        for i, (name, (value, slot)) in enumerate(zip(step.outputs, values)):
            (out,) = post_process(_single(step, i), (value,), self.fp16)
            if slot is None:
                self.env[name] = (out, None)
                continue
            dst = self.tape.new_slot()
            self.tape.entries.append(CallEntry(_single(step, i), {"__value__": slot}, [dst]))
            self.env[name] = (out, Slot(dst))
            self.tape.note(dst, out)


class DataRead(Exception):
    """A kernel converted a value computed from the input data into a Python value."""


class _Tainted(torch.Tensor):
    """A tensor computed from the input data: ops on it give tainted results, reading it into Python raises.

    The tracer would bake such a Python value (a branch taken, an index, a size) into the graph as a constant,
    right for the traced input and wrong for the next; reads of static values (constants, shapes) are fine.
    """

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in _DATA_READS:
            raise DataRead(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


_DATA_READS = {
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.__complex__,
    torch.Tensor.__array__,
    torch.Tensor.__format__,
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.equal,
    torch.Tensor.allclose,
    torch.Tensor.is_nonzero,
    torch.equal,
    torch.allclose,
    torch.is_nonzero,
    torch.tensor,
    torch.as_tensor,
}


def _taint(value: Any) -> Any:
    return value.as_subclass(_Tainted) if isinstance(value, torch.Tensor) else value


def _call_tainted(
    step: Step, reads: dict[str, tuple[Any, Slot | None]], precision: str, fp16: bool
) -> tuple[Step, list[Any]]:
    """Run a data-dependent step, checking with tainted inputs that a trace of it holds for any data.

    The values come from the reference kernel on plain inputs (exactly the interpreter: a bad input raises
    the interpreter's error). A second call with the dynamic inputs tainted catches a data read; the step
    is then recorded with its trace-safe variant if one exists, else it is not lowerable.

    Returns the step to record (the reference, or its variant) and its outputs.
    """
    plain = {n: v for n, (v, _) in reads.items()}
    outs = post_process(step, call_step(step, plain, precision, _no_blocks, None), fp16)
    tainted = {n: _taint(v) if s is not None else v for n, (v, s) in reads.items()}
    try:
        call_step(step, tainted, precision, _no_blocks, None)
    except DataRead as e:
        variant = trace_safe(step.kernel.fn)
        if variant is not None:
            safe = replace(step, kernel=replace(step.kernel, fn=variant))
            try:
                call_step(safe, tainted, precision, _no_blocks, None)
            except (DataRead, CannotLower):
                pass
            else:
                return safe, outs
        raise NotLowerable(
            step.op_type,
            step.name,
            f"its kernel {step.kernel.where} reads a value computed from the input data into Python ({e}), "
            "so a trace would fix it to this input's value",
        ) from None
    return step, outs


def _identity(value: Any) -> Any:
    return value


def _single(step: Step, i: int) -> Step:
    """A pass-through step carrying output ``i`` of ``step`` (its held dtype and fp16 rounding)."""
    from devicefit.interp.registry import Kernel

    kernel = Kernel(step.op_type, 0, _identity, {}, False, ("value",), frozenset())
    return Step(
        kernel=kernel,
        op_type=step.op_type,
        name=step.name,
        consts={},
        dyn=[("value", "__value__")],
        dyn_attrs=[],
        variadic=[],
        outputs=[step.outputs[i]],
        round_fp16=[0] if i in step.round_fp16 else [],
        ctx=step.ctx,
        held=[step.held[i]],
        declared_shapes=[step.declared_shapes[i]],
    )
