"""The compiled execution path: a program specialised per input-shape signature and run as TorchScript.

For each new signature (input names, shapes, dtypes) the plan is partially evaluated (``specialize.py``:
shape arithmetic folded, loops with static trip counts unrolled) into a straight-line tape of kernel calls,
and the tape is traced with ``torch.jit.trace`` into a graph of the same aten ops the interpreter runs, fp16
emulation included as explicit ``to(float16).to(float32)`` nodes. The graph is then cleaned up
(``graph_passes.py``: the recorded shapes folded, no-op casts and views dropped; ``half_pass.py``: roundings of
values that are fp16 already dropped), which changes no value. Calling the graph runs no Python per op and
releases the GIL, so two threads run two requests at once.

Two builds:

* ``exact=True``: only the above; outputs equal the interpreter's bit for bit.
* the default: also the rewrites of ``rewrites.py`` (batched loop projections, merged linears, forwarded loop
  buffers, fused elementwise chains in fp32, fp16 arithmetic on float16 tensors), which cut an unrolled GRU's
  kernel calls by 40% and its graph by 3x, at an ulp-level tolerance stated there (``FP32_RTOL`` = 2**-16,
  ``FP16_RTOL`` = 2**-8 of each output's largest magnitude); where nothing inexact applies, it is the exact
  graph and is checked bit for bit.

The plain interpreter stays the reference: a specialisation is used only after its outputs matched the
interpreter (bit for bit, or within the tolerance for a rewritten graph; one outside it is rebuilt exact) on
the inputs it was built from and on a second input with the same values in another order (a trace that baked
a data-dependent Python value would disagree). Anything that cannot be lowered (a data-dependent loop or
branch, state, a kernel reading tensor data into Python, a mismatch) falls back to the interpreter for that
signature, and the reason is kept in :attr:`CompiledProgram.fallbacks` and logged.

    compiled = interp.compile_program(program, precision="fp16")
    outputs = compiled.run({"x": x})      # program.run({"x": x}, precision="fp16"), within FP16_RTOL
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from devicefit.errors import DevicefitError, InputError, first_line
from devicefit.interp.agreement import compare_outputs, same_array, shuffled
from devicefit.interp.dtypes import round_fp16
from devicefit.interp.graph_passes import PassStats, simplify
from devicefit.interp.half_pass import drop_redundant_rounding, half_arithmetic
from devicefit.interp.rewrite_rows import view_constant_gathers
from devicefit.interp.rewrites import FP16_RTOL, FP32_RTOL, RewriteStats, rewrite_tape
from devicefit.interp.run import PRECISIONS, Program, output_to_numpy
from devicefit.interp.specialize import CallEntry, FnEntry, NotLowerable, Slot, Specializer, Tape

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, tuple[int, ...], str], ...]
_FLOAT_INPUTS = frozenset({"fp32", "fp16"})


def describe_signature(signature: Signature) -> str:
    """A signature as a user reads it: ``x[1x3x8x8], mask[1x16]``."""
    return ", ".join(f"{n}[{'x'.join(map(str, s))}]" for n, s, _ in signature)


@dataclass(frozen=True)
class Fallback:
    """Why one input-shape signature runs on the plain interpreter.

    Attributes:
        signature: the input names, shapes and dtypes.
        op_type: the op that could not be lowered (``""`` when the reason is not one op).
        op_name: that op's name in the program.
        reason: what stops the lowering.
    """

    signature: Signature
    op_type: str
    op_name: str
    reason: str

    def describe(self) -> str:
        where = f"op {self.op_type!r} ({self.op_name}) " if self.op_type else ""
        return f"{describe_signature(self.signature)}: {where}not compiled: {self.reason}; the interpreter runs it"


@dataclass
class Specialization:
    """A compiled program for one input-shape signature.

    Attributes:
        signature: the input names, shapes and dtypes it was built for.
        ops: kernel calls in the traced graph (after folding static values and unrolling loops).
        unrolled_loops: ``(while_loop name, iterations)`` for each loop unrolled.
        compile_s: seconds spent specialising, tracing and checking it.
        passes: what the graph clean-up did (``graph_passes.simplify``; None: no graph).
        rewrites: what the tape rewrites changed (``rewrites.rewrite_tape``; None: built exact, its outputs
            equal the interpreter's bit for bit).
        half_ops: fp16 emulation: elementwise ops run on float16 tensors (``half_pass.half_arithmetic``).
    """

    signature: Signature
    ops: int
    unrolled_loops: list[tuple[str, int]]
    compile_s: float
    passes: PassStats | None = None
    rewrites: RewriteStats | None = None
    half_ops: int = 0
    graph: Any = field(default=None, repr=False)  # the traced ScriptFunction (None: every output is static)
    input_names: list[str] = field(default_factory=list, repr=False)
    outputs: list[Any] = field(default_factory=list, repr=False)  # per output: a constant or a Slot

    def call(self, feeds: Mapping[str, torch.Tensor]) -> list[Any]:
        traced: tuple = ()
        if self.graph is not None:
            # NOTE: always without grad, as when it was checked: with grad enabled TorchScript optimises the
            # graph another way, and the LSTM's graph then gave other bits than the interpreter. Set directly
            # (grad mode is per thread): the no_grad context manager costs 3-4 us a call.
            grad = torch.is_grad_enabled()
            torch._C._set_grad_enabled(False)
            try:
                traced = self.graph(*[feeds[n] for n in self.input_names])
            finally:
                torch._C._set_grad_enabled(grad)
        it = iter(traced)
        return [next(it) if isinstance(o, Slot) else o for o in self.outputs]


class CompiledProgram:
    """A :class:`~devicefit.interp.Program` run through per-shape compiled graphs (thread-safe).

    Args:
        program: the loaded program (the reference it is checked against).
        precision: ``"fp32"`` or ``"fp16"`` emulation, as for ``Program.run``.
        max_signatures: compiled signatures kept (least recently used dropped first).
        compile_after: calls with one signature before it is compiled; the calls before run on the
            interpreter. 2 or more suits inputs whose shape keeps changing (a growing sequence): a
            shape seen once is not worth a compile that costs several interpreter runs.
        exact: only bit-identical transformations (the graph clean-up). False (the default) also applies
            the tape rewrites of ``interp/rewrites.py`` (fewer kernel calls for unrolled recurrences), whose
            outputs are checked against the interpreter within ``rewrites.FP32_RTOL`` / ``FP16_RTOL``; a
            specialisation outside it is rebuilt exact.
    """

    def __init__(
        self,
        program: Program,
        precision: str = "fp32",
        max_signatures: int = 8,
        compile_after: int = 1,
        exact: bool = False,
    ):
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.program = program
        self.precision = precision
        self.max_signatures = max_signatures
        self.compile_after = max(1, compile_after)
        self.exact = exact
        self._cache: OrderedDict[Signature, Specialization | Fallback] = OrderedDict()
        self._seen: dict[Signature, int] = {}  # calls per signature not compiled yet
        self._lock = threading.Lock()

    @property
    def fallbacks(self) -> list[Fallback]:
        """Signatures the interpreter runs, with the op and reason (the debug record of every fallback)."""
        with self._lock:
            return [v for v in self._cache.values() if isinstance(v, Fallback)]

    @property
    def specializations(self) -> list[Specialization]:
        with self._lock:
            return [v for v in self._cache.values() if isinstance(v, Specialization)]

    def feeds(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The inputs converted as the graphs take them (validated, fp16 inputs rounded under fp16)."""
        feeds = self._known_feeds(inputs)
        return feeds if feeds is not None else self.program._convert_inputs(inputs, self.precision)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run like ``program.run(inputs, precision=...)``; compiles on the first call per input signature."""
        program = self.program
        feeds = self.feeds(inputs)
        entry = self.get(feeds)
        if entry is None or isinstance(entry, Fallback):
            return program.run(inputs, precision=self.precision)
        try:
            # NOTE: no inference_mode here (3 us a call on tiny models): the graph's constants and inputs
            # never require grad, so no autograd state is recorded anyway.
            values = entry.call(feeds)
        except Exception as e:  # e.g. an index out of range: the reference raises its own clear error
            log.debug("compiled interpreter: graph failed (%s); rerunning the interpreter", first_line(e))
            return program.run(inputs, precision=self.precision)
        return {s.name: output_to_numpy(v, s, self.precision) for s, v in zip(program.outputs, values)}

    def _known_feeds(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
        """The inputs as tensors without re-validating them, when their signature was validated before.

        Only the common case (float32 C-contiguous arrays for float inputs, exactly the model's input names)
        of a signature already in the cache, which the first call validated; None for anything else, which
        then goes through the full conversion (``Program._convert_inputs``, ~25 us on the zoo models).
        """
        specs = self.program.inputs
        if type(inputs) is not dict or len(inputs) != len(specs):
            return None
        feeds: dict[str, torch.Tensor] = {}
        for spec in specs:
            arr = inputs.get(spec.name)
            if (
                type(arr) is not np.ndarray
                or arr.dtype != np.float32
                or spec.dtype not in _FLOAT_INPUTS
                or spec.kind != "tensor"
                or not arr.flags.c_contiguous
                or any(stride < 0 for stride in arr.strides)  # a reversed length-1 axis is "contiguous"
            ):
                return None
            tensor = torch.from_numpy(arr)
            if self.precision == "fp16" and spec.dtype == "fp16":
                tensor = round_fp16(tensor)
            feeds[spec.name] = tensor
        sig = tuple((n, tuple(t.shape), "torch.float32") for n, t in feeds.items())
        return feeds if sig in self._cache else None

    def get(self, feeds: Mapping[str, torch.Tensor]) -> Specialization | Fallback | None:
        """The specialisation for these converted inputs, compiled on a miss (None: not compiled yet)."""
        sig = signature_of(feeds)
        with self._lock:
            hit = self._cache.get(sig)
            if hit is not None:
                self._cache.move_to_end(sig)
                return hit
            seen = self._seen.pop(sig, 0) + 1
            if seen < self.compile_after:
                if len(self._seen) >= 64 * self.max_signatures:  # many one-off shapes: forget the counts
                    self._seen.clear()
                self._seen[sig] = seen
                return None
            # NOTE: compiling under the lock: concurrent first calls with one new shape compile it once.
            built = self._compile(sig, dict(feeds))
            self._cache[sig] = built
            while len(self._cache) > self.max_signatures:
                self._cache.popitem(last=False)
            return built

    # ------------------------------------------------------------------ compiling
    def _compile(self, sig: Signature, feeds: dict[str, torch.Tensor]) -> Specialization | Fallback:
        start = time.perf_counter()
        try:
            with torch.no_grad():
                built = None if self.exact else self._build(sig, feeds, rewrite=True)
                if built is None:
                    built = self._build(sig, feeds, rewrite=False)
                assert built is not None  # the exact build returns a graph or raises NotLowerable
        except NotLowerable as e:
            fallback = Fallback(sig, e.op_type, e.op_name, e.reason)
            log.info("compiled interpreter: %s", fallback.describe())
            return fallback
        except DevicefitError:
            raise  # the input is bad (the interpreter raises the same); nothing cached for the signature
        except Exception as e:  # a kernel that fails while specialised: the interpreter stays the reference
            fallback = Fallback(sig, "", "", f"specialising failed: {type(e).__name__}: {first_line(e)}")
            log.info("compiled interpreter: %s", fallback.describe())
            return fallback
        built.compile_s = time.perf_counter() - start
        log.debug(
            "compiled interpreter: %s -> %d ops, loops unrolled %s, %.3f s",
            sig,
            built.ops,
            built.unrolled_loops,
            built.compile_s,
        )
        return built

    def _build(self, sig: Signature, feeds: dict[str, torch.Tensor], rewrite: bool) -> Specialization | None:
        """Specialise, rewrite (unless exact), trace and check; None when the rewritten graph is off."""
        tape, expected = Specializer(self.program.plan, self.precision).run(feeds)
        try:
            stats = rewrite_tape(tape) if rewrite else None
        except Exception as e:  # a rewrite that breaks must not cost the program its exact graph
            log.warning("compiled interpreter: tape rewrites failed (%s); building it exact", first_line(e))
            return None
        if rewrite and not (stats and stats.fired) and self.precision != "fp16":
            return None  # nothing rewritten: the exact build is the same graph
        view_constant_gathers(tape)  # bit-identical: the exact build too (after the row reads were forwarded)
        built = _trace(tape, sig, feeds, half_ops=rewrite)
        if stats and stats.fired:
            built.rewrites = stats
        rtol = None  # bit for bit unless something inexact was applied
        if built.rewrites or built.half_ops:
            rtol = FP16_RTOL if self.precision == "fp16" else FP32_RTOL
        try:
            self._check(built, feeds, expected, rtol)
        except NotLowerable as e:
            if not rewrite:
                raise
            log.info("compiled interpreter: rewritten graph rejected (%s); building it exact", e.reason)
            return None
        return built

    def _check(
        self, built: Specialization, feeds: dict[str, torch.Tensor], expected: list[Any], rtol: float | None
    ) -> None:
        """Refuse a specialisation whose outputs differ from the interpreter's.

        ``rtol`` None: bit for bit (NaNs equal); else per output ``max |got - ref| <= rtol * max |ref|``.
        """
        names = [s.name for s in self.program.outputs]
        # three calls: TorchScript's profiling executor optimises the graph on the second one
        for _ in range(3):
            compare_outputs(names, built.call(feeds), expected, "the inputs it was built from", rtol)
        other = shuffled(feeds)
        try:
            reference = self.program.run({n: t.numpy() for n, t in other.items()}, precision=self.precision)
        except Exception as e:  # the shuffled values are invalid for this model: nothing to compare against
            log.debug("compiled interpreter: second check skipped (%s)", e)
            return
        got = {
            s.name: output_to_numpy(v, s, self.precision)
            for s, v in zip(
                self.program.outputs, built.call(self.program._convert_inputs(other, self.precision))
            )
        }
        for name in names:
            if not same_array(np.asarray(got[name]), np.asarray(reference[name]), rtol):
                raise NotLowerable(
                    "",
                    "",
                    f"output {name!r} differs from the interpreter on a second input (a value read from the input "
                    "data was baked into the trace)",
                )


def signature_of(feeds: Mapping[str, torch.Tensor]) -> Signature:
    """The cache key of converted inputs: names, shapes and dtypes."""
    return tuple((n, tuple(t.shape), str(t.dtype)) for n, t in feeds.items())


def _trace(tape: Tape, sig: Signature, feeds: dict[str, torch.Tensor], half_ops: bool) -> Specialization:
    """Trace the tape's replay into a TorchScript graph."""
    dyn_positions = [i for i, o in enumerate(tape.outputs) if isinstance(o, Slot)]
    ops = sum(1 for e in tape.entries if isinstance(e, (CallEntry, FnEntry)))
    spec = Specialization(
        sig,
        ops,
        list(tape.unrolled_loops),
        0.0,
        input_names=list(tape.input_names),
        outputs=list(tape.outputs),
    )
    if not dyn_positions:
        return spec

    def replay(*inputs: torch.Tensor) -> tuple:
        outs = tape.replay(inputs)
        return tuple(outs[i] for i in dyn_positions)

    example = tuple(feeds[n] for n in tape.input_names)
    # NOTE: the tracer warns about every tensor -> Python conversion, including the many of static values
    # (constants, shapes) that are correct to bake in; reads of input data were refused while specialising.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = torch.jit.trace(replay, example, check_trace=False)
        except Exception as e:  # the tracer rejects what it cannot record (non-tensor outputs, ...)
            raise NotLowerable("", "", f"tracing failed: {type(e).__name__}: {first_line(e)}") from e
    simplified = graph.graph.copy()
    spec.passes = simplify(simplified)
    if tape.precision == "fp16":
        # fewer rounding nodes: redundant ones always (bit-identical), half arithmetic unless exact
        dropped = drop_redundant_rounding(simplified)
        halved = half_arithmetic(simplified) if half_ops else 0
        if dropped or halved:
            again = simplify(simplified)
            first = spec.passes
            spec.passes = replace(
                again,
                nodes_before=first.nodes_before,
                shapes_folded=first.shapes_folded + again.shapes_folded,
                noops_dropped=first.noops_dropped + again.noops_dropped,
            )
        spec.half_ops = halved
    spec.graph = torch._C._create_function_from_graph("specialization", simplified)
    return spec


def compile_program(program: Program, precision: str = "fp32", exact: bool = False) -> CompiledProgram:
    """A compiled runner for ``program`` at ``precision`` (graphs are built per input shape on first use).

    ``exact=True``: outputs bit-identical to the interpreter's; the default also applies the tape rewrites
    (``interp/rewrites.py``), whose outputs are within ``FP32_RTOL`` / ``FP16_RTOL`` of the interpreter's.
    """
    return CompiledProgram(program, precision, exact=exact)


__all__ = ["CompiledProgram", "Fallback", "Specialization", "compile_program", "signature_of"]
