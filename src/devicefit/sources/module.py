"""Turn an ``nn.Module`` and its example inputs into a :class:`SourceModel` (shared by every torch loader)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.spec import (
    InputSlot,
    InputSpec,
    SourceModel,
    call_module,
    flatten_outputs,
    random_inputs,
    spec_of,
)


def from_module(
    spec: str,
    kind: str,
    net: Any,
    example: Any,
    inputs: list[InputSpec] | None,
    labels: Any = None,
    int_high: int = 8,
) -> SourceModel:
    """A SourceModel for ``net``: example inputs from ``example`` unless ``inputs`` override them.

    Raises:
        ModelLoadError: ``net`` is not a module, or its example inputs are of an unusable type.
        InputError: ``inputs`` do not match the model's inputs, or the model fails on them.
    """
    import torch

    if not isinstance(net, torch.nn.Module):
        raise ModelLoadError(f"{spec}: expected a torch.nn.Module, got {type(net).__name__}")
    net, compiled_note = _eager(net)
    net, half_note = _as_float32(net)
    training_note = _training_mode_note(net)
    net = net.eval()
    example_call = _example_call(net, example, spec)
    if half_note:  # the copy takes float32: so do the inputs that were half precision
        example_call.notes.append(half_note)
        example_call.arrays = {
            n: a.astype(np.float32) if a.dtype == np.float16 else a for n, a in example_call.arrays.items()
        }
        inputs = [replace(s, dtype="float32") if s.dtype == "float16" else s for s in inputs or []] or None
    if training_note:
        example_call.notes.append(training_note)
    if compiled_note:
        example_call.notes.append(compiled_note)
    arrays, by_keyword, template = example_call.arrays, example_call.by_keyword, example_call.template
    if inputs:
        if arrays and len(inputs) != len(arrays):
            raise InputError(
                f"{spec} takes {len(arrays)} input(s) ({', '.join(arrays)}), but {len(inputs)} --input given"
            )
        if arrays and by_keyword and {s.name for s in inputs} != set(arrays):
            raise InputError(
                f"--input names {[s.name for s in inputs]} do not match the model's {list(arrays)}"
            )
        specs = list(inputs)
        if (
            template is not None and not by_keyword
        ):  # positional: --input renames the example's inputs in order
            template = _renamed(template, dict(zip(arrays, (s.name for s in specs))))
        arrays = random_inputs(specs, int_high=int_high)
    elif arrays:
        specs = [spec_of(n, a) for n, a in arrays.items()]
    else:
        raise InputError(f"{spec} gives no example inputs; pass --input name:DIMxDIM[:dtype] for each input")
    source = SourceModel(
        kind=kind,
        origin=spec,
        module=net,
        exported=None,
        mlmodel=None,
        input_specs=specs,
        example_inputs=arrays,
        output_names=[],
        labels=None if labels is None else _to_numpy(labels),
        call_by_keyword=by_keyword,
        notes=example_call.notes,
        call_template=template,
    )
    source.output_names = _output_names(source)
    return source


def _eager(net: Any) -> tuple[Any, str | None]:
    """The eager module a ``torch.compile`` wrapper (``OptimizedModule``) holds, with a note; ``net`` otherwise.

    Each reference run through the wrapper compiles it again for a new input shape (seconds with Inductor, and a C
    compiler the machine may not have); it computes the eager module's function, which is what converts."""
    inner = getattr(net, "_orig_mod", None)
    if type(net).__name__ != "OptimizedModule" or inner is None:
        return net, None
    return inner, (
        "the model is a torch.compile wrapper: checked and converted the eager module it wraps "
        "(torch.compile changes how PyTorch runs it, not what it computes)"
    )


@dataclass
class _ExampleCall:
    """The example call taken apart: its tensors (the model's inputs) and where they go."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    by_keyword: bool = False
    template: Any = None
    notes: list[str] = field(default_factory=list)


def _example_call(net: Any, example: Any, spec: str) -> _ExampleCall:
    import torch

    call = _ExampleCall()
    if example is None:
        return call
    if isinstance(example, torch.Tensor | np.ndarray):
        example = (example,)
    if isinstance(example, Mapping):
        call.by_keyword = True
        call.template = {str(k): _take_apart(str(k), v, call, spec) for k, v in example.items()}
    elif isinstance(example, tuple | list):
        names = _param_names(net, len(example))
        call.template = [_take_apart(n, v, call, spec) for n, v in zip(names, example)]
    else:
        raise ModelLoadError(
            f"{spec}: example inputs are {type(example).__name__}; expected a tensor, a tuple or a dict of tensors"
        )
    if all(isinstance(v, InputSlot) for v in _arguments(call.template)):
        call.template = None  # every argument is one tensor input: the plain call needs no template
    return call


def _arguments(template: Any) -> list[Any]:
    return list(template.values()) if isinstance(template, Mapping) else list(template)


def _take_apart(name: str, value: Any, call: _ExampleCall, spec: str) -> Any:
    """``value``'s template; its tensors become inputs (a tuple argument ``pair`` gives ``pair_0``, ...)."""
    import torch

    if isinstance(value, torch.Tensor | np.ndarray):
        if name in call.arrays:
            raise ModelLoadError(
                f"{spec}: two example inputs would both be named {name!r} (a tuple or dict argument's parts are "
                "named ARG_0, ARG_KEY); rename one of the forward's arguments"
            )
        call.arrays[name] = _to_numpy(value)
        return InputSlot(name)
    if isinstance(value, tuple | list):
        parts = [_take_apart(f"{name}_{i}", v, call, spec) for i, v in enumerate(value)]
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple keeps its type
            return type(value)(*parts)
        return type(value)(parts)
    if isinstance(value, Mapping):
        return {k: _take_apart(f"{name}_{k}", v, call, spec) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        # Core ML inputs are tensors: a flag or size in the example is part of the model, not an input
        call.notes.append(
            f"{name}={value!r} in the example inputs is not a tensor: it is fixed at {value!r} in the conversion, "
            "not an input of the converted model (convert once per value to use others)"
        )
        return value
    raise ModelLoadError(
        f"{spec}: example input {name!r} is a {type(value).__name__}; devicefit converts tensors (alone or in "
        "tuples, lists and dicts) and fixes Python numbers, bools, strings and None as constants: pass tensors "
        f"for {name!r}, or leave it out and let forward() build it"
    )


def _renamed(template: Any, names: dict[str, str]) -> Any:
    if isinstance(template, InputSlot):
        return InputSlot(names.get(template.name, template.name))
    if isinstance(template, Mapping):
        return {k: _renamed(v, names) for k, v in template.items()}
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(*(_renamed(v, names) for v in template))
    if isinstance(template, tuple | list):
        return type(template)(_renamed(v, names) for v in template)
    return template


def _param_names(net: Any, count: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(net.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count and len(set(params[:count])) == count:
        return params[:count]
    return ["x"] if count == 1 else [f"x{i}" for i in range(count)]


def _as_float32(net: Any) -> tuple[Any, str]:
    """A module holding half-precision (float16 / bfloat16) weights cast to float32, and a note saying so.

    Core ML computes in fp16 or fp32 (never bfloat16), numpy has no bfloat16, coremltools meets an fp16 bias
    beside the fp32 weight it made of a scripted conv (and calls the conv unsupported), and a PyTorch reference
    computed in half precision carries its own rounding into every comparison. float32 holds the same weight
    values exactly. Cast in place, as ``eval()`` is: a copy would hold a large model twice.
    """
    import warnings

    import torch

    halves = {t.dtype for t in (*net.parameters(), *net.buffers())} & {torch.float16, torch.bfloat16}
    if not halves:
        return net, ""
    names = " and ".join(sorted(str(d).removeprefix("torch.") for d in halves))
    note = (
        f"the model holds {names} weights: checked in float32 (the same values exactly, the inputs as float32); "
        "the Core ML package stores them in fp16 by default, as for any float32 model"
    )
    with warnings.catch_warnings():
        # NOTE: a ScriptModule's _apply reads each parameter's .grad, and torch warns about non-leaf tensors
        warnings.filterwarnings("ignore", message=r"The \.grad attribute", category=UserWarning)
        return net.float(), note


def _training_mode_note(net: Any) -> str:
    """A note naming the layers that behave differently in training mode when the model was left in it.

    Core ML runs a model as ``eval()`` does (BatchNorm's running statistics, no dropout), and so does check;
    a user who forgot ``model.eval()`` gets other answers from their own ``model(x)`` and should know why.
    """
    import torch

    batch_norm = torch.nn.modules.batchnorm._BatchNorm
    dropout = torch.nn.modules.dropout._DropoutNd
    layers = [
        f"{name or 'the top module'} ({type(m).__name__})"
        for name, m in net.named_modules()
        # NOTE: getattr: torch.jit.freeze drops ``training`` from a ScriptModule and its submodules
        if getattr(m, "training", False)
        and (isinstance(m, batch_norm) or (isinstance(m, dropout) and m.p > 0))
    ]
    if not layers:
        return ""
    named = ", ".join(layers[:3]) + (f" (+{len(layers) - 3} more)" if len(layers) > 3 else "")
    return (
        f"the model was in training mode, where {named} behave differently (batch statistics, random "
        "dropout): checked in eval mode, as the converted model runs; call model.eval() before converting it"
    )


def _to_numpy(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds its values exactly
            value = value.float()
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ModelLoadError(f"example input is {type(value).__name__}; expected a torch.Tensor or numpy array")


def _output_names(source: SourceModel) -> list[str]:
    import torch

    assert source.module is not None
    tensors = source.example_tensors()
    try:
        with torch.no_grad():
            out = call_module(
                source.module,
                [s.name for s in source.input_specs],
                tensors,
                source.call_by_keyword,
                source.call_template,
            )
    except Exception as exc:
        raise InputError(
            f"{source.origin} failed on inputs {source.describe_inputs()}: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    names = [n for n, _ in flatten_outputs(out)]
    if not names:
        raise ModelLoadError(f"{source.origin} returned no tensors")
    return names


def one_line(exc: BaseException) -> str:
    """The exception text on one line, whitespace collapsed, cut at 300 characters (of a TorchScript
    interpreter failure, the error at the end of its serialized traceback)."""
    from devicefit.errors import torchscript_cause

    text = " ".join((torchscript_cause(str(exc)) or str(exc)).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def raised_at(exc: BaseException) -> str | None:
    """``file.py:line`` where the model's own code raised ``exc``: the innermost frame outside torch, numpy and
    devicefit (a Hugging Face ``modeling_*.py`` counts as the model's code). None when none is, or when
    coremltools is on the stack: it never runs the model's code, so the error is its own (a numpy frame under
    it is not a model line)."""
    import traceback
    from pathlib import Path

    package = str(Path(__file__).resolve().parent.parent) + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    if any(f"{os.sep}coremltools{os.sep}" in frame.filename for frame in frames):
        return None
    libraries = (f"{os.sep}torch{os.sep}", f"{os.sep}numpy{os.sep}", package)
    for frame in reversed(frames):
        file = frame.filename
        if not file.startswith("<") and not any(marker in str(Path(file).resolve()) for marker in libraries):
            return f"{Path(file).name}:{frame.lineno}"
    return None
