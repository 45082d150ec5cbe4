"""Turn an ``nn.Module`` and its example inputs into a :class:`SourceModel` (shared by every torch loader)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.spec import InputSpec, SourceModel, flatten_outputs, random_inputs, spec_of


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
    net = net.eval()
    arrays, by_keyword = _example_arrays(net, example, spec)
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
    )
    source.output_names = _output_names(source)
    return source


def _example_arrays(net: Any, example: Any, spec: str) -> tuple[dict[str, np.ndarray], bool]:
    import torch

    if example is None:
        return {}, False
    if isinstance(example, torch.Tensor | np.ndarray):
        example = (example,)
    if isinstance(example, Mapping):
        return {str(k): _to_numpy(v) for k, v in example.items()}, True
    if isinstance(example, tuple | list):
        names = _param_names(net, len(example))
        return {n: _to_numpy(v) for n, v in zip(names, example)}, False
    raise ModelLoadError(
        f"{spec}: example inputs are {type(example).__name__}; expected a tensor, a tuple or a dict of tensors"
    )


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


def _to_numpy(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
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
            out = (
                source.module(**dict(zip(source.example_inputs, tensors)))
                if source.call_by_keyword
                else (source.module(*tensors))
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
    """The exception text on one line, whitespace collapsed, cut at 300 characters."""
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
