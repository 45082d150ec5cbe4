"""Read a Core ML model (``.mlpackage`` folder, ``.mlmodel`` file or in-memory ``MLModel``) into its proto.

Nothing read from disk is trusted (see ``untrusted_files.py``): the Manifest.json is size- and depth-bounded and its
shape checked; the root model path must stay inside ``Data/``; only regular files are read; every weight
blob the program references must lie inside a regular weight file of the package before coremltools' C++
reader (which trusts offsets) sees it. Every failure is a :class:`ModelLoadError`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from devicefit._lazy import coremltools
from devicefit.errors import ModelLoadError, first_line
from devicefit.sources.spec import split_factory
from devicefit.sources.untrusted_files import inside, read_bounded, require_regular, shown, stat_path

# Real manifests are a few hundred bytes; model protos with weights in weight.bin are small, but an
# .mlmodel may hold its weights inline, and protobuf cannot parse messages of 2 GiB or more anyway.
MANIFEST_MAX_BYTES = 1 << 20
MODEL_MAX_BYTES = (1 << 31) - 1


def read_spec(source: Any) -> tuple[Any, str | None, str]:
    """(spec, weights_dir, origin) from a path or an in-memory MLModel.

    Raises:
        ModelLoadError: the path is missing, unreadable, not a model, or escapes its package.
    """
    ct = coremltools()
    if isinstance(source, ct.models.MLModel):
        return source.get_spec(), source.weights_dir, "<in-memory MLModel>"
    try:
        path = Path(os.fspath(source))
    except TypeError:
        raise ModelLoadError(
            f"cannot load a model from a {type(source).__name__}; pass a path or a coremltools MLModel"
        ) from None
    origin = shown(path)
    st = stat_path(path, "model")
    if st is None:
        _refuse_pytorch_source(path, origin)
        raise ModelLoadError(f"model not found: {origin} (expected a .mlpackage folder or .mlmodel file)")
    if stat.S_ISDIR(st.st_mode):
        if stat_path(path / "Manifest.json", "Manifest.json") is None:
            _refuse_pytorch_source(path, origin)
            raise ModelLoadError(
                f"{origin} is a folder but not an .mlpackage (no Manifest.json); pass the .mlpackage folder itself"
            )
        spec, weights_dir = _read_package(path)
        return spec, weights_dir, origin
    if path.suffix == ".mlpackage":
        raise ModelLoadError(
            f"{origin} is a file, but an .mlpackage is a folder; pass the whole package folder (or a .mlmodel)"
        )
    data = read_bounded(path, "model file", MODEL_MAX_BYTES)  # refuses a FIFO or device before any read
    if path.suffix.lower() != ".mlmodel":
        _refuse_pytorch_source(path, origin)
        _refuse_other_model_kinds(path, origin)
    spec = _parse_model(data, path)
    weights = path.parent / "weights"
    weights_st = stat_path(weights, "weights folder")
    return spec, str(weights) if weights_st is not None and stat.S_ISDIR(weights_st.st_mode) else None, origin


def _convert_first(what: str, model: str) -> str:
    """The end of a refusal of a non-Core ML model: what these commands read, and how to get it."""
    return (
        f"not a Core ML model; this command reads .mlpackage / .mlmodel: convert {what} first (devicefit check "
        f"{model} -o DIR) and pass DIR/model.mlpackage"
    )


def _refuse_pytorch_source(path: Path, origin: str) -> None:
    """Say so when ``path`` names a PyTorch model as ``check`` takes it (``FILE.py:FUNCTION``, a ``.py`` file, a
    Hugging Face folder): Core ML commands read converted packages, and ``check`` converts.

    Raises:
        ModelLoadError: ``path`` is one of those.
    """
    file, function = split_factory(str(path))
    factory = function is not None and Path(file).is_file()
    if factory or (path.suffix == ".py" and path.is_file()):
        what = "a FILE.py:FUNCTION factory" if factory else "a Python file"
    elif path.is_dir() and (path / "config.json").is_file():
        what = "a Hugging Face folder"
    else:
        return
    raise ModelLoadError(f"{origin} is a PyTorch model ({what}), {_convert_first('it', origin)}")


def _refuse_other_model_kinds(path: Path, origin: str) -> None:
    """Name what a file given as a Core ML model really is (an ONNX, TorchScript, pickle, .pt2 or numpy
    file), with what to do; protobuf would otherwise parse it as "corrupt" or, worse, as an empty model.

    Raises:
        ModelLoadError: the file is one of those kinds.
    """
    from devicefit.sources.torch_files import torch_file_kind

    kind = "onnx" if path.suffix.lower() == ".onnx" else torch_file_kind(path)
    what = {
        "onnx": "an ONNX model",
        "torchscript": "a TorchScript file",
        "pickle": "a torch.save pickle",
        "exported": "a torch.export .pt2 archive",
    }.get(kind)
    if kind == "numpy":
        raise ModelLoadError(
            f"{origin} holds numpy arrays (data), not a Core ML model; pass a .mlpackage folder or .mlmodel as the "
            "model and the arrays with --input NAME=FILE"
        )
    if what is not None:
        source = "the PyTorch model it came from" if kind == "onnx" else origin
        raise ModelLoadError(
            f"{origin} is {what}, {_convert_first(source, 'MODEL' if kind == 'onnx' else origin)}"
        )


def _parse_model(data: bytes, path: Path) -> Any:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-derived and recursion errors
        raise ModelLoadError(
            f"could not parse {shown(path)} as a Core ML model: {first_line(e)}; the file is truncated, "
            "corrupted or not a Core ML model"
        ) from None
    return spec


def _manifest_model_path(path: Path) -> str:
    """The root model's path (relative to ``Data/``) named by the package's Manifest.json, shape-checked."""
    raw = read_bounded(inside(path, "Manifest.json", "Manifest.json"), "Manifest.json", MANIFEST_MAX_BYTES)
    where = f"{shown(path)}/Manifest.json"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelLoadError(
            f"{where} is nested too deeply to be a manifest; the package is corrupted"
        ) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelLoadError(
            f"{where} is not valid JSON ({first_line(e)}); the package is corrupted, re-export it"
        ) from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(
            f"{where} holds a JSON {type(manifest).__name__}, expected an object; re-export it"
        )
    root = manifest.get("rootModelIdentifier")
    entries = manifest.get("itemInfoEntries")
    if not isinstance(root, str) or not isinstance(entries, dict):
        raise ModelLoadError(
            f"{where} lacks a string rootModelIdentifier and an itemInfoEntries object; the package is "
            "corrupted, re-export it"
        )
    entry = entries.get(root)
    rel = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(rel, str) or not rel:
        raise ModelLoadError(
            f"{where} gives the root model {root[:80]!r} no path string (got {type(rel).__name__}); the package "
            "is corrupted, re-export it"
        )
    return rel


def _read_package(path: Path) -> tuple[Any, str | None]:
    """Read an .mlpackage without modifying it (coremltools' MLModel rewrites Manifest.json on load)."""
    rel = _manifest_model_path(path)
    data_dir = path / "Data"
    inside(data_dir, rel, "root model")  # NOTE: checks rel itself (no '..', not absolute) for the message
    # ...and against the package root, so that a Data folder symlinked elsewhere cannot lead out either.
    model_file = inside(path, os.path.join("Data", rel), "root model")
    try:
        data = read_bounded(model_file, "model file", MODEL_MAX_BYTES)
    except ModelLoadError as e:
        if stat_path(model_file, "model file") is None:
            raise ModelLoadError(
                f"{shown(path)} lacks its model file Data/{rel}; the package is incomplete, re-export it"
            ) from None
        raise e from None
    spec = _parse_model(data, model_file)
    weights = model_file.parent / "weights"
    weights_st = stat_path(weights, "weights folder")
    if weights_st is None or not stat.S_ISDIR(weights_st.st_mode):
        return spec, None
    real = inside(path, os.path.relpath(weights, os.path.realpath(path)), "weights folder")
    return spec, str(real)


def check_package(source: Any) -> str:
    """Read and check a Core ML model on disk the way :func:`read_spec` and :func:`check_weight_blobs` do,
    for callers that then hand the path to coremltools (which trusts the package); its shown origin.

    Raises:
        ModelLoadError: see :func:`read_spec` and :func:`check_weight_blobs`.
    """
    spec, weights_dir, origin = read_spec(source)
    if spec.WhichOneof("Type") is None:
        raise ModelLoadError(
            f"{origin} holds no Core ML model (it parses as an empty one); pass a .mlpackage folder or .mlmodel"
        )
    if spec.WhichOneof("Type") == "mlProgram":
        check_weight_blobs(spec, weights_dir, origin)
    return origin


def check_weight_blobs(
    spec: Any, weights_dir: str | None, origin: str, max_total_bytes: int | None = None
) -> None:
    """Refuse blob references outside the weight file, or larger than they claim, before the C++ reader sees them.

    coremltools' reader copies each blob by the size its header states (and converts it), whatever type the
    program declares: a 48-byte constant whose header claims 2 GiB, in a sparse weight file of a few KiB on
    disk, took 8.7 GB of memory before failing. So each blob must fit its constant's declared type, and all
    of them together must fit in ``max_total_bytes`` (default: this machine's RAM).

    Raises:
        ModelLoadError: a referenced weight file is missing, special, outside the weights folder; a blob lies
            outside it, is larger than its declared type, or the blobs need more memory than there is.
    """
    from devicefit.sources.weight_blobs import (
        BLOB_FILE_MAX_BYTES,
        BLOB_SLACK_BYTES,
        check_blob_file,
        physical_memory_bytes,
    )

    refs: dict[str, list[int]] = {}
    declared: dict[tuple[str, int], tuple[int | None, str]] = {}
    for fn in spec.mlProgram.functions.values():
        for blk in fn.block_specializations.values():
            _collect_blob_refs(blk, refs, declared)
    if not refs:
        return
    if weights_dir is None:
        raise ModelLoadError(
            f"{origin} references weight files but has no weights folder; pass the whole .mlpackage"
        )
    total = 0
    for file_name, offsets in refs.items():
        # NOTE: the same rule as coremltools' milproto loader (the last '/'-separated part, joined to the
        # weights folder), so the file checked here is the file it will read.
        name = file_name.split("/")[-1]
        if name in ("", ".", ".."):
            raise ModelLoadError(
                f"{origin} references a weight file named {file_name[:80]!r}, which names no file; the package "
                "is corrupted, re-export it"
            )
        path = inside(Path(weights_dir), name, "weight file")
        size = require_regular(path, "weight file", BLOB_FILE_MAX_BYTES)
        for offset, nbytes in check_blob_file(path, offsets, origin, size).items():
            want, op_name = declared.get((file_name, offset), (None, "?"))
            if want is not None and nbytes > want + BLOB_SLACK_BYTES:
                raise ModelLoadError(
                    f"{origin}: weight file {name} holds {nbytes:,} bytes at offset {offset} for {op_name!r}, "
                    f"whose declared type needs {want:,}; the package is corrupted or crafted, re-export it"
                )
            total += nbytes
    limit = max_total_bytes if max_total_bytes is not None else physical_memory_bytes()
    if limit is not None and total > limit:
        raise ModelLoadError(
            f"{origin}: its weights take {total / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB of memory "
            "here; load it on a machine with more memory (or the package is corrupted)"
        )


def _collect_blob_refs(
    block: Any, refs: dict[str, list[int]], declared: dict[tuple[str, int], tuple[int | None, str]]
) -> None:
    from devicefit.sources.weight_blobs import declared_bytes

    for op in block.operations:
        where = op.outputs[0].name if op.outputs else op.type
        values = list(op.attributes.values())
        for argument in op.inputs.values():
            values += [b.value for b in argument.arguments if b.WhichOneof("binding") == "value"]
        for value in values:
            if value.WhichOneof("value") == "blobFileValue":
                blob = value.blobFileValue
                refs.setdefault(blob.fileName, []).append(int(blob.offset))
                declared[(blob.fileName, int(blob.offset))] = (declared_bytes(value.type), where)
        for b in op.blocks:
            _collect_blob_refs(b, refs, declared)
