"""Loaders for files torch reads: ``.pt2`` (torch.export), TorchScript, and pickled modules.

Three of these formats can carry code that runs while the file is read: a ``.pt2`` with compiled
AOTInductor artifacts or pickled entries, TorchScript that uses custom (C++-registered) classes, and a
``torch.save``'d module. Each is refused before torch touches the file unless the caller passed
``trust_code=True`` (``--trust-code``, formerly ``--trust-pickle``); the error names the part that carries
code and how to opt in.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.module import from_module, one_line
from devicefit.sources.spec import InputSpec, SourceModel, random_inputs, spec_of

NOT_A_MODEL = (
    "not a model file devicefit reads (.py factory, .pt2, TorchScript, pickled module, .mlpackage, .mlmodel "
    "or a Hugging Face folder)"
)
_NPY_MAGIC = b"\x93NUMPY"
# How TorchScript names a class registered from C++ (torch::class_): its methods, __setstate__ included,
# are native code from whatever library registered it, fed with state from the file.
_CUSTOM_CLASS_MARK = b"torch.classes."


def refuse_code(path: Path, part: str, alternative: str = "") -> ModelLoadError:
    """The one-line error for a file whose ``part`` would run code when loaded without consent."""
    return ModelLoadError(
        f"{path.name}: {part}; loading it would run arbitrary code from the file, so it is refused. "
        "If you trust the file, pass --trust-code (trust_code=True; --trust-pickle also works)"
        + (f"; {alternative}" if alternative else "")
    )


def load_torch_file(spec: str, path: Path, inputs: list[InputSpec] | None, trust_code: bool) -> SourceModel:
    """Load a ``.pt2``, TorchScript or pickled-module file, telling them apart by content.

    Raises:
        ModelLoadError: the file carries code and ``trust_code`` is False, is data rather than a model, is
            corrupt, or is of no kind devicefit reads.
        InputError: inputs are needed but not given, or do not fit the model.
    """
    kind = torch_file_kind(path)
    if kind == "exported":
        return _load_exported(spec, path, inputs, trust_code)
    if kind == "torchscript":
        return _load_torchscript(spec, path, inputs, trust_code)
    if kind == "numpy":
        raise ModelLoadError(
            f"{path.name} is data ({_numpy_description(path)}), not a model; pass it as --data {path} and give "
            "the model (a .py factory, .pt2, TorchScript, .mlpackage or Hugging Face folder) as MODEL"
        )
    if kind == "unknown":
        raise ModelLoadError(f"{path}: {NOT_A_MODEL}")
    return _load_pickle(spec, path, inputs, trust_code)


def torch_file_kind(path: Path) -> str:
    """What a file torch might read is, from its content (never by unpickling it).

    Returns:
        ``"exported"`` (a torch.export ``.pt2``), ``"torchscript"`` (``torch.jit.save``), ``"numpy"`` (an
        ``.npy`` / ``.npz``), ``"pickle"`` (``torch.save``: a pickled module or a state dict) or ``"unknown"``.
    """
    names = _zip_names(path)
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "exported"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if (names and all(n.endswith(".npy") for n in names)) or _starts_with(path, _NPY_MAGIC):
        return "numpy"
    if names or _starts_with_pickle(path):
        return "pickle"
    return "unknown"


def _numpy_description(path: Path) -> str:
    names = _zip_names(path)
    return (
        f"numpy arrays: {', '.join(n.removesuffix('.npy') for n in names[:4])}" if names else "a numpy array"
    )


def _zip_names(path: Path) -> list[str]:
    """The entry names of a zip archive ([] for anything else), refusing a zip bomb before any entry is read
    (torch's readers and the consent checks read entries whole)."""
    from devicefit.sources.pt2_check import refuse_bomb

    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                refuse_bomb(path, info)
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _starts_with(path: Path, magic: bytes) -> bool:
    return _head(path, len(magic)) == magic


def _starts_with_pickle(path: Path) -> bool:
    head = _head(path, 2)
    return len(head) == 2 and head[0] == 0x80  # pickle protocol opcode


# --------------------------------------------------------------------------- torch.export
@contextlib.contextmanager
def _torch_export_log_captured() -> Iterator[list[logging.LogRecord]]:
    """torch.export's own log records (a failed load logs a whole traceback as a warning) collected, not shown."""
    records: list[logging.LogRecord] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("torch.export")
    # torch._logging gives this logger its own stderr handler, so swapping the handlers (not adding one)
    # is what keeps the traceback off the terminal; restored whatever happens.
    saved_handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers = [_Collect(level=logging.DEBUG)]
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield records
    finally:
        logger.handlers = saved_handlers
        logger.propagate = propagate


def _cause(exc: BaseException, records: list[logging.LogRecord]) -> str:
    """The real reason a .pt2 failed: torch logs it and raises a generic 'see the warnings above'."""
    for record in reversed(records):
        if record.exc_info and record.exc_info[1] is not None:
            inner = record.exc_info[1]
            return f"{type(inner).__name__}: {one_line(inner)}"
    return f"{type(exc).__name__}: {one_line(exc)}"


def _load_exported(spec: str, path: Path, inputs: list[InputSpec] | None, trust_code: bool) -> SourceModel:
    import torch

    from devicefit.sources.pt2_check import code_reason

    # torch.export.load dlopens compiled artifacts and unpickles some entries: check before it reads anything.
    if not trust_code:
        try:
            reason = code_reason(path)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise ModelLoadError(
                f"cannot read ExportedProgram {path}: {type(exc).__name__}: {one_line(exc)}"
            ) from exc
        if reason is not None:
            raise refuse_code(path, reason)
    with _torch_export_log_captured() as records:
        try:
            exported = torch.export.load(str(path))
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load ExportedProgram {path} (corrupt or from another torch version): {_cause(exc, records)}"
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
    return SourceModel(
        kind="exported",
        origin=spec,
        module=exported.module(),
        exported=exported,
        mlmodel=None,
        input_specs=specs,
        example_inputs=arrays,
        output_names=["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)],
    )


def _exported_specs(user_inputs: list[str], placeholders: dict[str, Any]) -> list[InputSpec]:
    specs = []
    for name in user_inputs:
        val = placeholders[name].meta.get("val")
        shape = tuple(int(d) if str(d).isdigit() else 1 for d in getattr(val, "shape", ()))
        dtype = str(getattr(val, "dtype", "torch.float32")).replace("torch.", "")
        specs.append(InputSpec(name=name, shape=shape, dtype=dtype))
    return specs


# --------------------------------------------------------------------------- TorchScript
def torchscript_code_reason(path: Path) -> str | None:
    """Why loading the TorchScript archive at ``path`` would run native code, or None.

    Plain TorchScript is interpreted by torch's own ops; a custom class (``torch.classes.ns.Name``) runs
    the methods of a C++ library on state from the file, starting with its ``__setstate__`` at load.
    """
    from devicefit.sources.pt2_check import refuse_bomb

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            refuse_bomb(path, info)
            name = info.filename
            if "/code/" in name or name.endswith(".pkl"):
                data = archive.read(info)
                at = data.find(_CUSTOM_CLASS_MARK)
                if at >= 0:
                    end = at + len(_CUSTOM_CLASS_MARK)
                    while end < len(data) and (chr(data[end]).isalnum() or data[end] in b"._"):
                        end += 1
                    used = data[at:end].decode("ascii", "replace")
                    return f"{name} uses the custom class {used} (native code registered from C++)"
    return None


def _load_torchscript(spec: str, path: Path, inputs: list[InputSpec] | None, trust_code: bool) -> SourceModel:
    import torch

    if not trust_code:
        reason = torchscript_code_reason(path)
        if reason is not None:
            raise refuse_code(path, reason)
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load TorchScript {path}: {type(exc).__name__}: {one_line(exc)}"
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
    return from_module(spec, "torchscript", scripted, None, inputs)


# --------------------------------------------------------------------------- pickled modules
def _load_pickle(spec: str, path: Path, inputs: list[InputSpec] | None, trust_code: bool) -> SourceModel:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        state = None  # not weights-only: it pickles classes, i.e. code
    else:
        raise ModelLoadError(
            f"{path.name} holds only weights ({type(state).__name__}), no model code; load it in a .py factory "
            "(path/model.py:make_model) that builds the module and calls load_state_dict"
        )
    if not trust_code:
        raise refuse_code(
            path, "it is a pickled nn.Module", "or export it with torch.export / TorchScript instead"
        )
    try:
        net = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"cannot unpickle {path.name}: {type(exc).__name__}: {one_line(exc)}") from exc
    if not isinstance(net, torch.nn.Module):
        raise ModelLoadError(f"{path.name} unpickles to {type(net).__name__}, not a torch.nn.Module")
    if not inputs:
        raise InputError(
            f"{path.name} is a pickled module without example inputs; pass --input name:DIMxDIM[:dtype]"
        )
    return from_module(spec, "pickle", net, None, inputs)
