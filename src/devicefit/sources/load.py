"""``load_source``: turn a user's model spec (a path, or ``file.py:factory``) into a :class:`SourceModel`.

The kind is decided by content, not by extension alone: a folder with ``config.json`` is a Hugging Face
model, a zip holding ``code/`` is TorchScript, a zip holding ``archive_format`` is a torch.export program,
and any other torch file is a pickle. Formats that carry code run only with ``trust_code=True``
(:mod:`devicefit.sources.torch_files`); the loaders for each kind live in their own modules.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devicefit.errors import ModelLoadError
from devicefit.sources.coreml_hf import HF_DEFAULT_SEQ, load_coreml, load_hf
from devicefit.sources.coreml_hf import _coreml_input_spec as _coreml_input_spec  # the old home
from devicefit.sources.module import from_module, one_line
from devicefit.sources.spec import InputSpec, SourceModel, split_factory
from devicefit.sources.torch_files import load_torch_file
from devicefit.sources.untrusted_files import require_file_or_folder, shown

# Former private names, kept importable from here for callers that used them before the split.
_from_module = from_module

DEFAULT_FACTORY = "make_model"
__all__ = ["DEFAULT_FACTORY", "HF_DEFAULT_SEQ", "load_source"]


def load_source(
    spec: str,
    inputs: list[InputSpec] | None = None,
    trust_pickle: bool = False,
    *,
    trust_code: bool = False,
) -> SourceModel:
    """Load a model from a spec string.

    Args:
        spec: ``path/model.py[:factory]`` (factory default ``make_model``), a ``.pt2`` ExportedProgram, a
            TorchScript ``.pt``/``.ts``, a ``.mlpackage``/``.mlmodel``, a Hugging Face model folder, or a
            pickled ``nn.Module`` (only with ``trust_code``).
        inputs: input names/shapes/dtypes overriding the model's own example inputs (``--input``).
        trust_pickle: former name of ``trust_code``; either one gives consent.
        trust_code: allow formats that run code from the file while loading: a pickled ``nn.Module``, a
            ``.pt2`` with compiled (AOTInductor) artifacts or pickled weights, constants or sample inputs,
            TorchScript using custom C++ classes.

    Returns:
        The loaded SourceModel, with example inputs and, for torch kinds, an eval-mode reference.

    Raises:
        ModelLoadError: the file is missing, unreadable, carries code without consent, or is of an unsupported
            kind; a factory is missing or fails.
        InputError: inputs are needed but not given, or do not fit the model.
    """
    trusted = trust_code or trust_pickle
    path_text, factory = split_factory(spec)
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"model not found: {shown(path)}; check the path (MODEL is a FILE.py:FUNCTION factory, a .pt2, "
            "TorchScript or pickled-module file, a .mlpackage / .mlmodel, or a Hugging Face folder)"
        )
    # NOTE: a FIFO or a device (/dev/zero) would block or never end in the zip / pickle probes below.
    require_file_or_folder(path, "model")
    if path.is_dir():
        if path.suffix == ".mlpackage":
            return load_coreml(spec, path, inputs)
        if (path / "config.json").is_file():
            return load_hf(spec, path, inputs)
        raise ModelLoadError(
            f"{path_text} is a folder but neither a .mlpackage nor a Hugging Face model (no config.json)"
        )
    if path.suffix == ".py":
        return _load_python(spec, path, factory or DEFAULT_FACTORY, inputs)
    if factory is not None:
        raise ModelLoadError(f"{spec!r}: a ':factory' suffix only applies to a .py file")
    if path.suffix == ".mlmodel":
        return load_coreml(spec, path, inputs)
    return load_torch_file(spec, path, inputs, trusted)


def _load_python(spec: str, path: Path, factory_name: str, inputs: list[InputSpec] | None) -> SourceModel:
    module = _import_file(path)
    factory = getattr(module, factory_name, None)
    if factory is None:
        available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ModelLoadError(
            f"{path} has no factory {factory_name!r}; pass {path}:<function>, one of: {', '.join(available) or 'none'}"
        )
    if not callable(factory):
        raise ModelLoadError(
            f"{path}:{factory_name} is not callable; it must be a function returning a model"
        )
    try:
        made = factory()
    except Exception as exc:
        raise ModelLoadError(
            f"factory {path.name}:{factory_name}() raised {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    net, example, labels = _unpack_factory_result(made, f"{path.name}:{factory_name}")
    return from_module(spec, "python", net, example, inputs, labels)


def _import_file(path: Path) -> Any:
    name = f"devicefit_user_{path.stem}_{uuid.uuid4().hex[:8]}"
    import_spec = importlib.util.spec_from_file_location(name, path)
    if import_spec is None or import_spec.loader is None:
        raise ModelLoadError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(import_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the model file can import its neighbours
    # NOTE: registered under its unique name: dataclasses (and typing) look a class's module up in sys.modules,
    # so a model file with a @dataclass config failed to import without it
    sys.modules[name] = module
    try:
        import_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        hint = missing_module_hint(exc, path)
        raise ModelLoadError(f"importing {path} raised {type(exc).__name__}: {one_line(exc)}{hint}") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def missing_module_hint(exc: Exception, path: Path) -> str:
    """What to do about a module the model file imports and Python cannot find ("" for other errors).

    Only the file's own folder is put on the path: a file one folder below its project root that imports the
    project's package (``from mypkg.models import Net``) needs the root on ``PYTHONPATH``, named here when a folder
    above the file holds that package.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = exc.name.split(".")[0]
    for folder in path.resolve().parents:
        if (folder / top / "__init__.py").is_file() or (folder / f"{top}.py").is_file():
            return f"; {top!r} is in {folder}: run with PYTHONPATH={folder}"
    return "; install it in this environment (pip install ...) or put its folder on PYTHONPATH"


def _unpack_factory_result(made: Any, where: str) -> tuple[Any, Any, Any]:
    """(module, example inputs, labels) from ``(module, inputs)``, a dict, or an object with attributes."""
    import torch

    labels = None
    if isinstance(made, torch.nn.Module):
        return made, None, None
    if isinstance(made, tuple | list) and len(made) in (2, 3) and isinstance(made[0], torch.nn.Module):
        return made[0], made[1], made[2] if len(made) == 3 else None
    if isinstance(made, Mapping) and "module" in made:
        return made["module"], made.get("inputs"), made.get("labels")
    if isinstance(getattr(made, "module", None), torch.nn.Module):
        return made.module, getattr(made, "inputs", None), getattr(made, "labels", labels)
    raise ModelLoadError(
        f"factory {where}() returned {_described(made)}; {_what_to_do(made)}return (model, example_inputs) "
        "or (model, example_inputs, labels), with model a torch.nn.Module, e.g. "
        "`return Net().eval(), torch.randn(1, 3, 224, 224)`"
    )


def _described(value: Any) -> str:
    """``a tuple of (Tensor, Linear)``: the kinds of what came back, for a user to recognise."""
    if isinstance(value, tuple | list):
        kinds = ", ".join(type(v).__name__ for v in list(value)[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of ({kinds})"
    return type(value).__name__


def _what_to_do(value: Any) -> str:
    """The likely mistake behind a wrong factory result, as the start of the advice ('' when none is clear)."""
    import torch

    items = list(value) if isinstance(value, tuple | list) else [value]
    at = next((i for i, v in enumerate(items) if isinstance(v, torch.nn.Module)), None)
    if at is not None and isinstance(value, tuple | list):
        return f"item {at + 1} of the {type(value).__name__} is the module: put it first and "
    if any(
        isinstance(v, Mapping) and v and all(isinstance(t, torch.Tensor) for t in v.values()) for v in items
    ):
        return "a state dict holds weights, not the model: build the module, load_state_dict() into it and "
    return ""
