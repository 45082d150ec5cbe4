"""Candidate evaluation: swap decompressed weights into an fp16 program and run the interpreter.

A candidate is an *assignment* (weight name -> choice label). Each choice's decompressed weights are
computed once by coremltools (the real compression ops, decompressed by the interpreter's constexpr
kernels), so evaluating a candidate only replaces constants and runs the program: it is numerically the
package that :func:`devicefit.compress.verbs.apply_plan` would build, without building it.

Executors run many evaluations: :class:`SerialExecutor` (in process), :class:`ProcessExecutor`
(``concurrent.futures`` processes) and :class:`RayExecutor` (a Ray cluster; ``pip install devicefit[ray]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from devicefit.compress.batching import PER_SAMPLE, Batching, run_samples
from devicefit.compress.budget import margin, measure, noise, per_sample
from devicefit.errors import InputError


@dataclass
class EvalSpec:
    """Everything a worker needs to evaluate candidates (picklable).

    Attributes:
        package: path of the fp16 base ``.mlpackage``.
        consumers: weight name -> ``[(op name, input name)]`` of the ops reading it.
        table: weight name -> choice label -> decompressed weight (float16/float32 array).
        feeds: one input dict per sample.
        reference: output name -> stacked fp32 reference outputs (samples on axis 0).
        labels: integer labels for an accuracy budget.
        metric: budget metric name.
        batching: how to run the samples (see :mod:`devicefit.compress.batching`; probed once by the caller).
    """

    package: str
    consumers: dict[str, list[tuple[str, str]]]
    table: dict[str, dict[str, np.ndarray]]
    feeds: list[dict[str, np.ndarray]]
    reference: dict[str, np.ndarray]
    labels: np.ndarray | None
    metric: str
    batching: Batching = PER_SAMPLE


@dataclass
class Measure:
    """One evaluated candidate: the budget metric, the relative output noise and the safety margin
    (``MARGIN_Z`` standard errors of the per-sample metric, see :func:`devicefit.compress.budget.margin`)."""

    metric: float
    noise: float
    margin: float = 0.0


def with_constants(program: Any, substitutions: dict[str, dict[str, Any]]) -> Any:
    """A program that reads ``substitutions`` (op name -> {input name: tensor}) instead of its constants.

    The loaded program is not touched: only the steps that change (and the blocks holding them) are
    copied, everything else is shared. So one loaded base program can serve concurrent evaluations.
    """
    import copy
    import dataclasses

    from devicefit.interp.program import Block
    from devicefit.interp.run import Program

    def rebuild(block: Block) -> Block:
        steps, changed = [], False
        for step in block.steps:
            new = step
            subs = substitutions.get(step.name)
            if subs:
                new = dataclasses.replace(step, consts={**step.consts, **subs})
            if step.ctx.blocks:
                inner = [rebuild(b) for b in step.ctx.blocks]
                if any(a is not b for a, b in zip(inner, step.ctx.blocks)):
                    ctx = copy.copy(new.ctx)
                    ctx.blocks = inner
                    new = dataclasses.replace(new, ctx=ctx)
            changed |= new is not step
            steps.append(new)
        return dataclasses.replace(block, steps=steps) if changed else block

    plan = program.plan
    new_plan = dataclasses.replace(plan, block=rebuild(plan.block))
    return Program(new_plan, program.functions, program.origin, program.spec)


class Evaluator:
    """Holds a loaded base program and evaluates assignments against the reference."""

    def __init__(self, spec: EvalSpec):
        import torch

        from devicefit import interp

        self.spec = spec
        self.prog = interp.load(spec.package)
        self.first_output = self.prog.outputs[0].name
        steps = {}
        stack_: list[Any] = [self.prog.plan.block]
        while stack_:
            block = stack_.pop()
            for step in block.steps:
                steps[step.name] = step
                stack_.extend(step.ctx.blocks)
        # weight -> [(op name, input name, the base constant)]
        self.slots: dict[str, list[tuple[str, str, Any]]] = {}
        for weight, readers in spec.consumers.items():
            slots = []
            for op_name, param in readers:
                step = steps.get(op_name)
                if step is None or param not in step.consts:
                    raise InputError(f"weight {weight!r}: op {op_name!r} does not read it as a constant")
                slots.append((op_name, param, step.consts[param]))
            self.slots[weight] = slots
        self.tensors = {
            w: {c: torch.from_numpy(np.ascontiguousarray(a)) for c, a in choices.items()}
            for w, choices in spec.table.items()
        }

    def program_for(self, assignment: dict[str, str]) -> Any:
        """The base program with ``assignment``'s weights substituted (the base is left as it is)."""
        subs: dict[str, dict[str, Any]] = {}
        for weight, choice in assignment.items():
            if choice == "fp16":
                continue
            new = self.tensors[weight][choice]
            for op_name, param, old in self.slots[weight]:
                subs.setdefault(op_name, {})[param] = new.to(old.dtype).reshape(old.shape)
        return with_constants(self.prog, subs) if subs else self.prog

    def evaluate(self, assignment: dict[str, str], samples: int | None = None) -> Measure:
        """Run the program with ``assignment``'s weights (others as in the base).

        ``samples``: only the first that many samples (the per-layer sensitivity), None: all of them.
        """
        spec = self.spec
        feeds, reference, labels = spec.feeds, spec.reference, spec.labels
        if samples is not None and samples < len(feeds):
            feeds = feeds[:samples]
            reference = {k: v[:samples] for k, v in reference.items()}
            labels = None if labels is None else labels[:samples]
        out = run_samples(self.program_for(assignment), feeds, "fp16", spec.batching)
        value = measure(spec.metric, out, reference, labels, self.first_output)
        spread = margin(per_sample(spec.metric, out, reference, labels, self.first_output))
        return Measure(value if not math.isnan(value) else -math.inf, noise(out, reference), spread)


class Executor(Protocol):
    """Evaluates assignments, possibly in parallel; results in input order."""

    def evaluate(
        self, assignments: Sequence[dict[str, str]], samples: int | None = None
    ) -> list[Measure]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Evaluates in this process (the default for one worker)."""

    def __init__(self, spec: EvalSpec):
        self._evaluator = Evaluator(spec)

    def evaluate(self, assignments: Sequence[dict[str, str]], samples: int | None = None) -> list[Measure]:
        return [self._evaluator.evaluate(a, samples) for a in assignments]

    def close(self) -> None:
        pass


_WORKER: Evaluator | None = None


def _init_worker(spec: EvalSpec) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    _WORKER = Evaluator(spec)


def _evaluate_in_worker(assignment: dict[str, str], samples: int | None = None) -> Measure:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.evaluate(assignment, samples)


class ProcessExecutor:
    """Local worker processes (``concurrent.futures.ProcessPoolExecutor``, spawn start method)."""

    def __init__(self, spec: EvalSpec, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec,),
        )

    def evaluate(self, assignments: Sequence[dict[str, str]], samples: int | None = None) -> list[Measure]:
        return list(self._pool.map(_evaluate_in_worker, assignments, [samples] * len(assignments)))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Evaluations as Ray tasks; one Evaluator per Ray actor, spec shipped once through the object store."""

    def __init__(self, spec: EvalSpec, address: str | None, workers: int):
        try:
            import ray
        except ImportError as e:
            raise InputError("--ray needs Ray: pip install 'devicefit[ray]'") from e
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False)
        actor_cls = ray.remote(num_cpus=1)(_RayEvaluator)
        spec_ref = ray.put(spec)
        # Any: ray's actor-handle typing differs between versions (and ray is an optional extra)
        self._actors: list[Any] = [actor_cls.remote(spec_ref) for _ in range(max(1, workers))]

    def evaluate(self, assignments: Sequence[dict[str, str]], samples: int | None = None) -> list[Measure]:
        refs = [
            self._actors[i % len(self._actors)].evaluate.remote(a, samples) for i, a in enumerate(assignments)
        ]
        return list(self._ray.get(refs))

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._owns:
            self._ray.shutdown()


class _RayEvaluator:
    def __init__(self, spec: EvalSpec):
        _init_worker(spec)

    def evaluate(self, assignment: dict[str, str], samples: int | None = None) -> Measure:
        return _evaluate_in_worker(assignment, samples)


def make_executor(spec: EvalSpec, workers: int = 1, ray_address: str | None = None) -> Executor:
    """The executor for ``workers`` / ``ray_address`` (``"local"`` starts a local Ray instance)."""
    if ray_address is not None:
        return RayExecutor(spec, None if ray_address == "local" else ray_address, workers)
    if workers <= 1:
        return SerialExecutor(spec)
    return ProcessExecutor(spec, workers)


ProgressFn = Callable[[int, int, str], None]
