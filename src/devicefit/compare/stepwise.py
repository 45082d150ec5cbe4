"""Run a program in fp32 and fp16 side by side, one top-level op at a time, freeing dead values.

``Program.run(intermediates=True)`` returns every value of a run at once: comparing two runs that way holds
both runs' whole environments (every activation of the model, twice, per sample). Here both runs advance
one op at a time through the interpreter's own loop (each step is run as a one-step block, so rounding and
dtype handling are exactly those of :meth:`Program.run`), the caller compares the op's outputs, and a value
is dropped from both environments as soon as its last reader has run. Peak memory is then about twice the
program's live activation set, not twice the sum of all its values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class PairedStep:
    """One top-level op after both runs executed it.

    Attributes:
        index: position in the program's top-level ops.
        step: the interpreter step (``name``, ``op_type``, ``outputs``, ``ctx.output_dtypes``).
        fp32: output name -> value (torch tensor) of the fp32 run.
        fp16: output name -> value of the fp16 run.
    """

    index: int
    step: Any
    fp32: dict[str, Any]
    fp16: dict[str, Any]


def last_reads(program: Any) -> dict[str, int]:
    """Value name -> index of the last top-level op that reads it (nested blocks count for their op)."""
    last: dict[str, int] = {}
    for i, step in enumerate(program.plan.block.steps):
        for name in step.reads():
            last[name] = i
    return last


def paired_run(program: Any, feeds: Mapping[str, Any], outputs: dict[str, Any]) -> Iterator[PairedStep]:
    """Yield each top-level op's outputs of the fp32 and fp16 runs; fills ``outputs`` at the end.

    Args:
        program: a :class:`devicefit.interp.Program` (stateless).
        feeds: input name -> array.
        outputs: receives ``{"fp32": {...}, "fp16": {...}}``, the program outputs as numpy arrays
            (as :meth:`Program.run` returns them), once the generator is exhausted.
    """
    import torch

    from devicefit.interp.program import Block
    from devicefit.interp.run import _Runner, _to_numpy

    plan = program.plan
    block = plan.block
    out_names = [o.name for o in program.outputs]
    keep = set(out_names) | set(block.outputs) | set(plan.constants)
    last = last_reads(program)
    dying: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in keep:
            dying.setdefault(i, []).append(name)
    runners = {}
    with torch.inference_mode():
        for precision in ("fp32", "fp16"):
            converted = program._convert_inputs(feeds, precision)
            runner = _Runner(plan, precision, False, program._convert_states(None), program.spec)
            head = Block(list(block.inputs), [], [], list(block.input_dtypes))
            runner.run_block(head, [converted.get(n, runner.states.get(n)) for n in block.inputs])
            runners[precision] = runner
        r32, r16 = runners["fp32"], runners["fp16"]
        for i, step in enumerate(block.steps):
            one = Block([], [step], [])
            outs = {}
            # one run at a time: the fp32 run's dead inputs go before the fp16 run allocates its outputs
            for precision, runner in (("fp32", r32), ("fp16", r16)):
                runner.run_block(one, [])
                outs[precision] = {n: runner.env.get(n) for n in step.outputs}
                for n in dying.get(i, ()):
                    runner.env.pop(n, None)
                for n in step.outputs:  # values nobody reads (and not outputs) die at once
                    if n not in last and n not in keep:
                        runner.env.pop(n, None)
            yield PairedStep(i, step, outs["fp32"], outs["fp16"])
            del outs
        for precision, runner in runners.items():
            values = [runner.env[n] for n in block.outputs]
            outputs[precision] = {
                spec.name: _to_numpy(v, spec.dtype, precision) for spec, v in zip(program.outputs, values)
            }
