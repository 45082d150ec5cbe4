"""``load_source``: turn a user's model spec (a path, or ``file.py:factory``) into a :class:`SourceModel`.

The kind is decided by content, not by extension alone: a folder with ``config.json`` is a Hugging Face
model, a zip holding ``code/`` is TorchScript, a zip holding ``archive_format`` is a torch.export program,
and any other torch file is a pickle, which is only unpickled with an explicit ``trust_pickle=True`` (so is a
``.pt2`` that holds pickled entries: see :mod:`devicefit.sources.pt2_check`).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.dtypes import proto_array_numpy
from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.spec import InputSpec, SourceModel, flatten_outputs, random_inputs, spec_of

DEFAULT_FACTORY = "make_model"
HF_DEFAULT_SEQ = 128


def load_source(spec: str, inputs: list[InputSpec] | None = None, trust_pickle: bool = False) -> SourceModel:
    """Load a model from a spec string.

    Args:
        spec: ``path/model.py[:factory]`` (factory default ``make_model``), a ``.pt2`` ExportedProgram, a
            TorchScript ``.pt``/``.ts``, a ``.mlpackage``/``.mlmodel``, a Hugging Face model folder, or a
            pickled ``nn.Module`` (only with ``trust_pickle``).
        inputs: input names/shapes/dtypes overriding the model's own example inputs (``--input``).
        trust_pickle: allow unpickling a ``torch.save``'d module, or a ``.pt2`` whose weights, constants or
            sample inputs are Python pickles (either runs arbitrary code from the file).

    Returns:
        The loaded SourceModel, with example inputs and, for torch kinds, an eval-mode reference.

    Raises:
        ModelLoadError: the file is missing, unreadable or of an unsupported kind; a factory is missing or fails.
        InputError: inputs are needed but not given, or do not fit the model.
    """
    path_text, factory = _split_factory(spec)
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model not found: {path_text}")
    if path.is_dir():
        if path.suffix == ".mlpackage":
            return _load_coreml(spec, path, inputs)
        if (path / "config.json").is_file():
            return _load_hf(spec, path, inputs)
        raise ModelLoadError(
            f"{path_text} is a folder but neither a .mlpackage nor a Hugging Face model (no config.json)"
        )
    if path.suffix == ".py":
        return _load_python(spec, path, factory or DEFAULT_FACTORY, inputs)
    if factory is not None:
        raise ModelLoadError(f"{spec!r}: a ':factory' suffix only applies to a .py file")
    if path.suffix == ".mlmodel":
        return _load_coreml(spec, path, inputs)
    return _load_torch_file(spec, path, inputs, trust_pickle)


def _split_factory(spec: str) -> tuple[str, str | None]:
    head, sep, tail = spec.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return head, tail
    return spec, None


# --------------------------------------------------------------------------- python factory
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
            f"factory {path.name}:{factory_name}() raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    net, example, labels = _unpack_factory_result(made, f"{path.name}:{factory_name}")
    return _from_module(spec, "python", net, example, inputs, labels)


def _import_file(path: Path) -> Any:
    name = f"devicefit_user_{path.stem}_{uuid.uuid4().hex[:8]}"
    import_spec = importlib.util.spec_from_file_location(name, path)
    if import_spec is None or import_spec.loader is None:
        raise ModelLoadError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(import_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the model file can import its neighbours
    try:
        import_spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelLoadError(f"importing {path} raised {type(exc).__name__}: {_one_line(exc)}") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


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
        f"factory {where}() returned {type(made).__name__}; expected (nn.Module, example_inputs) or "
        "{'module': ..., 'inputs': ...}"
    )


def _from_module(
    spec: str,
    kind: str,
    net: Any,
    example: Any,
    inputs: list[InputSpec] | None,
    labels: Any = None,
    int_high: int = 8,
) -> SourceModel:
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
            f"{source.origin} failed on inputs {source.describe_inputs()}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    names = [n for n, _ in flatten_outputs(out)]
    if not names:
        raise ModelLoadError(f"{source.origin} returned no tensors")
    return names


# --------------------------------------------------------------------------- torch files
def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _load_torch_file(
    spec: str, path: Path, inputs: list[InputSpec] | None, trust_pickle: bool
) -> SourceModel:
    names = _zip_names(path)
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return _load_exported(spec, path, inputs, trust_pickle)
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return _load_torchscript(spec, path, inputs)
    if not names and not _looks_like_pickle(path):
        raise ModelLoadError(
            f"{path}: not a model file devicefit reads (.py factory, .pt2, TorchScript, pickled module, "
            ".mlpackage, .mlmodel or a Hugging Face folder)"
        )
    return _load_pickle(spec, path, inputs, trust_pickle)


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80  # pickle protocol opcode


def _load_exported(spec: str, path: Path, inputs: list[InputSpec] | None, trust_pickle: bool) -> SourceModel:
    import torch

    from devicefit.sources.pt2_check import unsafe_pickle_reason

    # torch.export.load unpickles some archive entries with full pickle: check before it reads anything.
    reason = None if trust_pickle else unsafe_pickle_reason(path)
    if reason is not None:
        raise ModelLoadError(
            f"{path.name}: {reason}; loading it would run arbitrary code from the file, so it is refused. "
            "If you trust it, pass --trust-pickle (trust_pickle=True)"
        )
    try:
        exported = torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load ExportedProgram {path}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    user_inputs = list(exported.graph_signature.user_inputs)
    placeholders = {n.name: n for n in exported.graph.nodes if n.op == "placeholder"}
    arrays: dict[str, np.ndarray] = {}
    stored = getattr(exported, "example_inputs", None)
    if stored and len(stored[0]) == len(user_inputs) and all(isinstance(t, torch.Tensor) for t in stored[0]):
        arrays = {n: t.detach().numpy() for n, t in zip(user_inputs, stored[0])}
    specs = (
        _exported_specs(user_inputs, placeholders)
        if not arrays
        else [spec_of(n, a) for n, a in arrays.items()]
    )
    if inputs:
        if len(inputs) != len(user_inputs):
            raise InputError(
                f"{spec} takes {len(user_inputs)} input(s) ({', '.join(user_inputs)}), got {len(inputs)}"
            )
        specs = list(inputs)
        arrays = {}
    if not arrays:
        arrays = random_inputs(specs)
    n_out = len(exported.graph_signature.user_outputs)
    source = SourceModel(
        kind="exported",
        origin=spec,
        module=exported.module(),
        exported=exported,
        mlmodel=None,
        input_specs=specs,
        example_inputs=arrays,
        output_names=["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)],
    )
    return source


def _exported_specs(user_inputs: list[str], placeholders: dict[str, Any]) -> list[InputSpec]:
    specs = []
    for name in user_inputs:
        val = placeholders[name].meta.get("val")
        shape = tuple(int(d) if str(d).isdigit() else 1 for d in getattr(val, "shape", ()))
        dtype = str(getattr(val, "dtype", "torch.float32")).replace("torch.", "")
        specs.append(InputSpec(name=name, shape=shape, dtype=dtype))
    return specs


def _load_torchscript(spec: str, path: Path, inputs: list[InputSpec] | None) -> SourceModel:
    import torch

    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load TorchScript {path}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    graph_inputs = [i.debugName().split(".")[0] for i in list(scripted.graph.inputs())[1:]]
    if not inputs:
        raise InputError(
            f"{path.name} is TorchScript, which does not record input shapes; pass --input for each of: "
            + ", ".join(f"{n}:DIMxDIM[:dtype]" for n in graph_inputs)
        )
    if len(inputs) != len(graph_inputs):
        raise InputError(
            f"{path.name} takes {len(graph_inputs)} input(s) ({', '.join(graph_inputs)}), got {len(inputs)}"
        )
    return _from_module(spec, "torchscript", scripted, None, inputs)


def _load_pickle(spec: str, path: Path, inputs: list[InputSpec] | None, trust_pickle: bool) -> SourceModel:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        state = None  # not weights-only: it pickles classes, i.e. code
    else:
        raise ModelLoadError(
            f"{path.name} holds only weights ({type(state).__name__}), no model code; load it in a .py factory "
            "(path/model.py:make_model) that builds the module and calls load_state_dict"
        )
    if not trust_pickle:
        raise ModelLoadError(
            f"{path.name} is a pickled nn.Module; unpickling runs arbitrary code from the file, so it is refused. "
            "If you trust it, pass --trust-pickle (trust_pickle=True), or export it with torch.export / TorchScript"
        )
    try:
        net = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"cannot unpickle {path.name}: {type(exc).__name__}: {_one_line(exc)}") from exc
    if not isinstance(net, torch.nn.Module):
        raise ModelLoadError(f"{path.name} unpickles to {type(net).__name__}, not a torch.nn.Module")
    if not inputs:
        raise InputError(
            f"{path.name} is a pickled module without example inputs; pass --input name:DIMxDIM[:dtype]"
        )
    return _from_module(spec, "pickle", net, None, inputs)


# --------------------------------------------------------------------------- Core ML and Hugging Face
def _load_coreml(spec: str, path: Path, inputs: list[InputSpec] | None) -> SourceModel:
    from devicefit._lazy import coremltools

    ct = coremltools()
    try:
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read Core ML model {path}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    described = mlmodel.get_spec().description
    specs = inputs or [_coreml_input_spec(i) for i in described.input]
    return SourceModel(
        kind="coreml",
        origin=spec,
        module=None,
        exported=None,
        mlmodel=mlmodel,
        input_specs=list(specs),
        example_inputs=random_inputs(list(specs)),
        output_names=[o.name for o in described.output],
    )


def _coreml_input_spec(feature: Any) -> InputSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        shape = tuple(int(d) for d in array.shape)
        if not shape and array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            shape = tuple(int(d) for d in array.enumeratedShapes.shapes[0].shape)
        elif not shape and array.WhichOneof("ShapeFlexibility") == "shapeRange":
            shape = tuple(int(r.lowerBound) for r in array.shapeRange.sizeRanges)
        dtype = proto_array_numpy(array.dataType)
        return InputSpec(feature.name, shape, dtype.name if dtype is not None else "float32")
    if kind == "imageType":
        image = feature.type.imageType
        channels = 1 if image.colorSpace == 10 else 3  # 10 = GRAYSCALE
        return InputSpec(feature.name, (1, channels, int(image.height), int(image.width)), "float32")
    raise ModelLoadError(f"Core ML input {feature.name!r} has type {kind}, which devicefit cannot feed")


def _load_hf(spec: str, path: Path, inputs: list[InputSpec] | None) -> SourceModel:
    try:
        import transformers
    except ImportError as exc:
        raise ModelLoadError(f"{path} is a Hugging Face model; install transformers to load it") from exc
    try:
        # never run code shipped with the model folder (auto_map); weights load with weights_only (transformers)
        config = transformers.AutoConfig.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
        net = transformers.AutoModel.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load Hugging Face model {path}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    seq = min(
        HF_DEFAULT_SEQ, int(getattr(config, "max_position_embeddings", HF_DEFAULT_SEQ) or HF_DEFAULT_SEQ)
    )
    specs = inputs or [
        InputSpec("input_ids", (1, seq), "int32"),
        InputSpec("attention_mask", (1, seq), "int32"),
    ]
    vocab = int(getattr(config, "vocab_size", 8) or 8)
    arrays = random_inputs(list(specs), int_high=vocab)
    example = {n: _torch_of(a) for n, a in arrays.items()}
    return _from_module(spec, "hf", net, example, None, int_high=vocab)


def _torch_of(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
