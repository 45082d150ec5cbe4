"""Where a generation step diverges: the first PyTorch module whose output in that step leaves PyTorch's.

The generation check (:mod:`devicefit.compare.generation`) finds the first step at which a candidate's greedy
token differs from PyTorch's. Here that one step is run again, with every intermediate value, on the very
inputs and KV cache the candidate had: the session is replayed teacher-forced up to the step, and the step's
call (``prefill`` for step 0, ``decode`` after) is traced (:meth:`devicefit.engines.lm_session.InterpLM.trace`).
PyTorch runs the same step through the stateful wrapper (the model's own modules, the cache read as the package
stored it), with a forward hook on every module of the model recording its output and the line that called it.

Program values are paired with module calls through the package's provenance (which wrapper call each op came
from, stored at conversion): the stateful trace scopes an op by the module's name as the wrapper reached it
(``mlp.act_fn``, ``q_proj``), so the k-th run of consecutive ops inside modules named ``P`` is the k-th call of a
module whose path ends in ``P`` (``model.layers.1.mlp.act_fn``). A name whose run and call counts differ is
skipped, never guessed. The first pair, in program order, whose relative error exceeds the run's tolerance
(1e-3 for fp32: the conversion-fidelity bound; 1e-2 for fp16 and compressed runs: the fp16 divergence rule)
is the finding. Everything between the last agreeing module and it is devicefit's own attention code
(``convert/lm_wrapper.py``) or the model's code on the finding's line.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StepLocation", "localize_runs", "localize_step"]

# tolerance per run kind, on the relative L2 error of a module's output (see the module docstring)
TOLERANCE = {"fp32": 1e-3, "default": 1e-2}


@dataclass
class StepLocation:
    """One localised generation step.

    Attributes:
        run: the candidate (``fp32``, ``fp16``, ``int4``...).
        prompt: index of the prompt whose step this is.
        step: the generation step (0 = the prompt's ``prefill``).
        function: ``prefill`` or ``decode``.
        where: ``module (Type) at file:line`` of the first diverging module call; None when none diverges or
            the step could not be localised (``reason`` says which).
        value: the program value compared there.
        rel_error: its relative L2 error against PyTorch's module output.
        last_agreeing: the last module call before it that still agrees.
        reason: one sentence: what was found and what to do, or why the step could not be localised.
    """

    run: str
    prompt: int
    step: int
    function: str
    where: str | None
    value: str | None
    rel_error: float | None
    last_agreeing: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


@dataclass
class _Call:
    """One module call in PyTorch: full path, class name, output, the line that called it."""

    path: str
    type: str
    output: np.ndarray
    line: str | None

    def label(self) -> str:
        return f"{self.path} ({self.type})" + (f" at {self.line}" if self.line else "")


def localize_step(
    model: Any,
    package: Any,
    precision: str,
    prompt: np.ndarray,
    forced: np.ndarray,
    step: int,
    run: str,
    prompt_index: int = 0,
    provenance_package: Any = None,
) -> StepLocation:
    """Localise ``step`` of ``run`` (see the module docstring); never raises.

    Args:
        model: the PyTorch causal LM (the generation check's reference).
        package: the candidate's stateful package; ``precision`` the interpreter precision it ran at.
        prompt: the prompt's token ids; ``forced``: PyTorch's greedy tokens (teacher forcing).
        step: the step to localise; ``run``: the candidate's name (sets the tolerance and the advice).
        prompt_index: reported as is.
        provenance_package: where the provenance is stored when ``package`` has none (a compressed copy).
    """
    from devicefit.errors import first_line

    function = "prefill" if step == 0 else "decode"
    base: dict[str, Any] = {"run": run, "prompt": prompt_index, "step": step, "function": function}
    try:
        return _localize(model, package, precision, prompt, forced, step, run, provenance_package, base)
    except Exception as exc:  # NOTE: localisation must never hide the verdict it explains
        return StepLocation(
            **base, where=None, value=None, rel_error=None, last_agreeing=None,
            reason=f"step {step} could not be localised: {first_line(exc)}",
        )  # fmt: skip


def _localize(
    model: Any, package: Any, precision: str, prompt: np.ndarray, forced: np.ndarray, step: int, run: str,
    provenance_package: Any, base: dict[str, Any],
) -> StepLocation:  # fmt: skip
    from devicefit.check.localize import _rel_error
    from devicefit.convert.provenance import load_from_package
    from devicefit.engines.lm_session import InterpLM

    provenance = load_from_package(package)
    if provenance is None and provenance_package is not None:  # a compressed copy: the names are its source's
        provenance = load_from_package(provenance_package)
    if provenance is None or not len(provenance):
        return StepLocation(
            **base, where=None, value=None, rel_error=None, last_agreeing=None,
            reason=f"step {step} could not be localised: the package records no provenance (converted before "
            "devicefit stored it); re-convert it with this version",
        )  # fmt: skip
    session = InterpLM(package, precision)
    session.reset()
    if step == 0:
        traced = session.trace(np.asarray(prompt))
    else:
        session.feed(np.asarray(prompt))
        for token in forced[: step - 1]:
            session.feed(np.array([int(token)]))
        traced = session.trace(np.array([int(forced[step - 1])]))
    calls = _torch_calls(model, session.max_context, traced, round_cache_fp16=precision == "fp16")
    pairs = _pairs(traced.program, provenance, traced.values, calls)
    tolerance = TOLERANCE.get(run, TOLERANCE["default"])
    last_ok: _Call | None = None
    worst: tuple[float, _Call] | None = None
    for name, call in pairs:
        error = _rel_error(np.asarray(traced.values[name], dtype=np.float32), call.output)
        if error > tolerance:
            return StepLocation(
                **base, where=call.label(), value=name, rel_error=error,
                last_agreeing=last_ok.label() if last_ok else None,
                reason=_advice(run, step, traced.function, call, error, tolerance, last_ok, overflow=bool(
                    np.isfinite(call.output).all() and not np.isfinite(np.asarray(traced.values[name])).all())),
            )  # fmt: skip
        last_ok = call
        if worst is None or error > worst[0]:
            worst = (error, call)
    if not pairs:
        why = "no program value could be paired with a PyTorch module call"
        return StepLocation(**base, where=None, value=None, rel_error=None, last_agreeing=None,
                            reason=f"step {step} could not be localised: {why}")  # fmt: skip
    largest = " (every module's output equals PyTorch's)"
    if worst is not None and worst[0] > 0:
        largest = f" (largest: {worst[1].label()}, {worst[0]:.2g})"
    return StepLocation(
        **base, where=None, value=None, rel_error=worst[0] if worst else None, last_agreeing=None,
        reason=f"in step {step} ({traced.function}) no module's output leaves PyTorch's by more than {tolerance:g} "
        f"relative{largest}: nothing in this step leaves PyTorch's beyond rounding, so a token that differs here "
        "is a near-tie of the logits, not a localised divergence",
    )  # fmt: skip


def _advice(
    run: str,
    step: int,
    function: str,
    call: _Call,
    error: float,
    tol: float,
    ok: _Call | None,
    overflow: bool,
) -> str:
    after = f", after {ok.path} still agrees" if ok else ""
    found = (f"step {step} ({function}) first diverges at {call.label()} (relative error {error:.3g} > {tol:g}"
             f"{after})")  # fmt: skip
    if run == "fp32":
        return (f"{found}: the fp32 package computes something else there than PyTorch, a conversion problem; "
                "check that module's translation (and devicefit's stateful attention, convert/lm_wrapper.py, "
                "when it lies between the two)")  # fmt: skip
    if run == "fp16":
        why = "overflows fp16 (beyond +-65504)" if overflow else "loses it to fp16 rounding"
        return (f"{found}: fp16 compute {why} there; the fp32-compute package (convert_causal_lm(..., "
                "precision=\"fp32\")) computes it as PyTorch does, or keep that module's values within fp16's "
                "range")  # fmt: skip
    return (f"{found}: the {run} weights lose it there; keep that module's weights wider (compress --budget "
            "picks mixed plans)")  # fmt: skip


def _torch_calls(model: Any, max_context: int, traced: Any, round_cache_fp16: bool) -> list[_Call]:
    """Every module call of the model's modules in PyTorch on the traced step's inputs and cache, in call order.

    ``round_cache_fp16``: the step's new keys and values are stored as the interpreter stores them (fp16 states
    are rounded in fp16 emulation only; its fp32 mode keeps them in float32).
    """
    import torch

    from devicefit.convert.lm_wrapper import stateful_wrapper

    wrapper = stateful_wrapper(model, max_context, round_cache_fp16=round_cache_fp16).eval()
    with torch.no_grad():
        for name, state in traced.states.items():  # every state the package read (LFM2: conv_state too)
            getattr(wrapper, name).copy_(torch.from_numpy(np.asarray(state, dtype=np.float32)))
    calls: list[_Call] = []
    names = {m: n for n, m in model.named_modules() if n}

    def hook(module: Any, _args: Any, output: Any) -> None:
        # NOTE: one tensor only: of a tuple (a router's logits, weights and indices) the program's last value of
        # the first one's shape may be another of them (the softmax), so tuples are not paired at all
        out = output
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            calls.append(_Call(names[module], type(module).__name__, out.detach().float().numpy().copy(),
                               _call_site()))  # fmt: skip

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            ids = torch.from_numpy(np.asarray(traced.feeds["input_ids"], dtype=np.int64))
            wrapper(ids, torch.from_numpy(np.asarray(traced.feeds["causal_mask"], dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    return calls


def _call_site() -> str | None:
    """``file:line`` of the code that called the module: the innermost frame outside torch and this module."""
    torch_dir = f"{Path('torch')}/"
    frame: Any = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if f"/{torch_dir}" not in name and name != __file__ and not name.startswith("<"):
            return f"{Path(name).name}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _pairs(
    program: Any, provenance: Any, values: dict[str, Any], calls: list[_Call]
) -> list[tuple[str, _Call]]:
    """(program value, PyTorch call) pairs in program order (see the module docstring)."""
    runs: dict[str, list[list[str]]] = {}  # short module path -> runs of value names
    types: dict[str, str | None] = {}
    open_runs: dict[str, list[str]] = {}
    for step in program.plan.block.steps:
        origin = provenance.get(step.outputs[0]) if step.outputs else None
        if origin is None or not origin.module_path:
            # constants, ops without a scope and the wrapper's own top-level ops neither extend nor end a run.
            # NOTE: a compressed copy's new ops (coremltools re-runs its passes) may reuse a name the source
            # package gave a top-level op elsewhere ('select_0' between the embedding's index ops and its gather):
            # ending runs there split the embedding's run in two, and it was never paired
            continue
        path = origin.module_path
        parts = path.split(".") if path else []
        scopes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        for closed in [s for s in open_runs if s not in scopes]:
            del open_runs[closed]
        for scope in sorted(scopes, key=len):
            if scope not in open_runs:
                open_runs[scope] = []
                runs.setdefault(scope, []).append(open_runs[scope])
            open_runs[scope].extend(step.outputs)
        if path:
            types.setdefault(path, origin.module_type)
    pairs: list[tuple[int, str, _Call]] = []
    order = {name: i for i, step in enumerate(program.plan.block.steps) for name in step.outputs}
    for scope, found in runs.items():
        mine = [c for c in calls if (c.path == scope or c.path.endswith("." + scope))
                and (types.get(scope) in (None, c.type))]  # fmt: skip
        if len(mine) != len(found):
            continue  # the trace called it another number of times than PyTorch: never guess which is which
        for names, call in zip(found, mine, strict=True):
            name = _output_of(names, values, call.output.shape)
            if name is not None:
                pairs.append((order[name], name, call))
    return [(name, call) for _, name, call in sorted(pairs, key=lambda p: p[0])]


def _output_of(names: list[str], values: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """The run's last float value of the module output's shape (a module's output is what it computes last)."""
    for name in reversed(names):
        value = values.get(name)
        if value is not None and np.shape(value) == shape and np.asarray(value).dtype.kind == "f":
            return name
    return None


def localize_runs(
    generation: Any, model: Any, packages: dict[str, tuple[Any, str]], provenance: Any = None
) -> None:
    """Localise the first differing step of every run of ``generation`` that has one, in place (a failing run
    without one: its step of lowest logits cosine).

    Each such run gets ``localization`` (a :class:`StepLocation` as JSON); a run that is not a pass also gets the
    finding in its ``reason``. ``packages``: run name -> (package, interpreter precision); ``provenance``: the
    package whose provenance the compressed copies share (they lose it when compressed).
    """
    for run in generation.runs:
        target = _step_to_localize(run)
        if target is None or run.name not in packages:
            continue
        index, step = target
        package, precision = packages[run.name]
        if index >= len(generation.prompt_ids):  # a check built without its prompts: nothing to replay
            continue
        found = localize_step(
            model, package, precision, np.asarray(generation.prompt_ids[index]),
            np.asarray(run.prompts[index].reference_tokens), step, run.name, index, provenance,
        )  # fmt: skip
        run.localization = found.to_json()
        if run.verdict != "pass":
            run.reason = f"{run.reason}. Located: {found.reason}"


def _step_to_localize(run: Any) -> tuple[int, int] | None:
    """(prompt, step): the earliest first differing step; for a run that fails with every token equal (its
    logits or perplexity moved), the step of lowest logits cosine; None when there is nothing to explain."""
    firsts = [(p.first_diff_step, i) for i, p in enumerate(run.prompts) if p.first_diff_step is not None]
    if firsts:
        step, index = min(firsts)
        return index, int(step)
    if run.verdict == "pass" or not run.step_cosine or not run.prompts:
        return None
    return 0, int(np.argmin(run.step_cosine))
