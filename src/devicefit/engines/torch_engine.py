"""The ``torch`` engine: the PyTorch reference, for an ``nn.Module`` or a TorchScript file."""

from __future__ import annotations

import copy
import inspect
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from devicefit.engines.base import Availability, Engine, InputSpec
from devicefit.errors import InputError, ModelLoadError, first_line


def _kind(arr: np.ndarray) -> str:
    return {"f": "float", "b": "bool"}.get(arr.dtype.kind, "int")


def example_specs(examples: Mapping[str, Any], dynamic_batch: bool = True) -> list[InputSpec]:
    """InputSpecs from example arrays: dtype kind and shape fixed, axis 0 free when ``dynamic_batch``."""
    specs = []
    for name, value in examples.items():
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        shape: tuple[int | None, ...] = tuple(arr.shape)
        if dynamic_batch and shape:
            shape = (None, *shape[1:])
        specs.append(InputSpec(name, _kind(arr), shape))
    return specs


def flat_outputs(out: Any) -> list[Any]:
    """A module's outputs in the order :func:`output_names_for` names them: a dict's values, a tuple's items."""
    if isinstance(out, Mapping):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def output_names_for(out: Any) -> list[str]:
    """The names a module's outputs get (every engine that runs an nn.Module names them alike): a dict's keys,
    ``output`` for one tensor, ``output_0``, ``output_1``, ... for a tuple or list."""
    if isinstance(out, Mapping):
        return [str(k) for k in out]
    if isinstance(out, (tuple, list)):
        return ["output"] if len(out) == 1 else [f"output_{i}" for i in range(len(out))]
    return ["output"]


def normalize_examples(examples: Any, names: list[str] | None) -> dict[str, Any]:
    """Examples given as a dict, a tuple or a single array -> name -> array."""
    if examples is None:
        return {}
    if isinstance(examples, Mapping):
        return dict(examples)
    if not isinstance(examples, (tuple, list)):
        examples = (examples,)
    names = names or (["x"] if len(examples) == 1 else [f"x{i}" for i in range(len(examples))])
    if len(names) != len(examples):
        raise InputError(
            f"{len(examples)} example inputs but {len(names)} input names; give one name per input"
        )
    return dict(zip(names, examples))


def load_torchscript(path: Path, trust_code: bool = False) -> Any:
    """``torch.jit.load`` a TorchScript file, refusing one that uses custom C++ classes unless ``trust_code``.

    Raises:
        ModelLoadError: missing, not TorchScript, or carrying native code without consent.
    """
    import torch

    from devicefit.sources.torch_files import refuse_code, torchscript_code_reason

    if not path.exists():
        raise ModelLoadError(f"model not found: {path} (expected a TorchScript .pt file)")
    if not trust_code:
        try:
            reason = torchscript_code_reason(path)
        except zipfile.BadZipFile:
            reason = None  # not an archive at all: torch.jit.load says what it is not
        except OSError as e:
            raise ModelLoadError(f"cannot read {path}: {first_line(e)}") from e
        if reason is not None:
            raise refuse_code(path, reason)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise ModelLoadError(
            f"{path} is not a TorchScript file ({first_line(e)}); "
            "save it with torch.jit.save(torch.jit.trace(model, example)) or pass the nn.Module"
        ) from e


def _half_weights(module: Any) -> bool:
    """Whether a floating parameter or buffer of ``module`` is float16 / bfloat16."""
    import torch

    tensors = [*module.parameters(), *module.buffers()]
    return any(t.dtype in (torch.float16, torch.bfloat16) for t in tensors)


def _as_float32(module: Any) -> Any:
    """``module`` with float32 weights (in place); a ScriptModule's ``.float()`` warns about ``.grad``: not ours."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return module.float()


class TorchEngine(Engine):
    """Runs an ``nn.Module`` (or a TorchScript file saved with ``torch.jit.save``) eagerly.

    Options:
        example_inputs: dict / tuple of example arrays; gives input names, dtypes and shapes (axis 0 free).
        input_names: names for positional ``forward`` arguments (default: ``forward``'s parameter names).
        output_names: names for the outputs (default ``output`` or ``output_0``, ``output_1``, ...).
    """

    name: ClassVar[str] = "torch"

    @classmethod
    def availability(cls) -> Availability:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        return Availability("torch", True, devices=devices, version=f"torch-{torch.__version__}")

    def _load(self) -> bool | None:
        import torch

        module = self.model
        if isinstance(module, (str, os.PathLike)):
            module = load_torchscript(Path(module), bool(self.options.get("trust_code", False)))
        if not isinstance(module, torch.nn.Module):
            raise InputError(
                f"the torch engine takes an nn.Module or a TorchScript path, got {type(module).__name__}"
            )
        use_cuda = self.compute_units in ("all", "cpu_and_gpu") and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if self.precision == "fp16":
            module = copy.deepcopy(module).half()
        elif _half_weights(module):
            # NOTE: fp32 precision computes in float32 (inputs are cast to it): a model saved in fp16 / bf16 failed
            # in its first layer ('expected scalar type Float but found Half'). A file loaded here is ours to cast
            # in place; a module the caller passed is copied, not changed under them
            if module is not self.model:
                module = _as_float32(module)
            else:
                module = _as_float32(copy.deepcopy(module))
        self.module = module.eval().to(self.device)
        self.arg_names = self.options.get("input_names") or self._forward_names(module)
        examples = normalize_examples(self.options.get("example_inputs"), self.arg_names)
        if examples:
            self.arg_names = list(examples)
            self.inputs = example_specs(examples)
        else:
            self.inputs = [InputSpec(n, None, None) for n in self.arg_names]
        self.output_names = list(self.options.get("output_names") or [])
        self._float_inputs = {s.name for s in self.inputs if s.dtype == "float"}
        return None

    @staticmethod
    def _forward_names(module: Any) -> list[str]:
        schema = getattr(getattr(module, "forward", None), "schema", None)
        if schema is not None:  # TorchScript: the first argument is self
            return [a.name for a in schema.arguments[1:]]
        params = inspect.signature(module.forward).parameters.values()
        return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def _predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = []
        for n in self.arg_names:
            t = torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device)
            # NOTE: integer data for an input declared float (by its example) is cast, as onnxruntime and the
            # interpreter cast to the declared type (the forward failed on it: 'Long and Float')
            if t.is_floating_point() or n in self._float_inputs:
                t = t.to(torch.float16 if self.precision == "fp16" else torch.float32)
            args.append(t)
        with torch.inference_mode():
            out = self.module(*args)
        return self._name_outputs(out)

    def _name_outputs(self, out: Any) -> dict[str, np.ndarray]:
        names = (
            output_names_for(out) if isinstance(out, Mapping) else self.output_names or output_names_for(out)
        )
        return {n: v.detach().cpu().numpy() for n, v in zip(names, flat_outputs(out))}

    def _unload(self) -> None:
        self.module = None  # type: ignore[assignment]
