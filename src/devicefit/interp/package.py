"""Read a Core ML model (``.mlpackage`` folder, ``.mlmodel`` file or in-memory ``MLModel``) into its proto.

Nothing read from disk is trusted: see :func:`read_spec`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devicefit._lazy import coremltools
from devicefit.errors import ModelLoadError, first_line


def read_spec(source: Any) -> tuple[Any, str | None, str]:
    """(spec, weights_dir, origin) from a path or an in-memory MLModel."""
    ct = coremltools()
    if isinstance(source, ct.models.MLModel):
        return source.get_spec(), source.weights_dir, "<in-memory MLModel>"
    path = Path(os.fspath(source))
    origin = str(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path} (expected a .mlpackage folder or .mlmodel file)")
    if path.is_dir():
        if not (path / "Manifest.json").exists():
            raise ModelLoadError(
                f"{path} is a folder but not an .mlpackage (no Manifest.json); pass the .mlpackage folder itself"
            )
        spec, weights_dir = _read_package(path)
        return spec, weights_dir, origin
    try:
        from coremltools.models.utils import load_spec

        spec = load_spec(str(path))
    except Exception as e:
        raise ModelLoadError(
            f"could not parse {path} as a Core ML model: {first_line(e)}; the file is truncated, corrupted "
            "or not a Core ML model"
        ) from e
    weights = path.parent / "weights"
    return spec, str(weights) if weights.exists() else None, origin


def _read_package(path: Path) -> tuple[Any, str | None]:
    """Read an .mlpackage without modifying it (coremltools' MLModel rewrites Manifest.json on load)."""
    import json

    from coremltools.proto import Model_pb2

    try:
        manifest = json.loads((path / "Manifest.json").read_text(encoding="utf-8"))
        root = manifest["rootModelIdentifier"]
        rel = manifest["itemInfoEntries"][root]["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(
            f"{path}/Manifest.json is unreadable or incomplete ({first_line(e)}); the package is corrupted, re-export it"
        ) from e
    model_file = path / "Data" / rel
    if not model_file.is_file():
        raise ModelLoadError(
            f"{path} lacks its model file Data/{rel}; the package is incomplete, re-export it"
        )
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(model_file.read_bytes())
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelLoadError(
            f"could not parse {model_file.name} in {path}: {first_line(e)}; the package is truncated or corrupted, "
            "re-export it"
        ) from e
    weights = model_file.parent / "weights"
    return spec, str(weights) if weights.is_dir() else None


def check_weight_blobs(spec: Any, weights_dir: str | None, origin: str) -> None:
    """Refuse blob references outside the weight file before the C++ reader sees them."""
    from devicefit.interp.weights import check_blob_file

    refs: dict[str, list[int]] = {}
    for fn in spec.mlProgram.functions.values():
        for blk in fn.block_specializations.values():
            _collect_blob_refs(blk, refs)
    if not refs:
        return
    if weights_dir is None:
        raise ModelLoadError(
            f"{origin} references weight files but has no weights folder; pass the whole .mlpackage"
        )
    for rel, offsets in refs.items():
        path = Path(weights_dir) / Path(rel).name
        check_blob_file(path, offsets, origin)


def _collect_blob_refs(block: Any, refs: dict[str, list[int]]) -> None:
    for op in block.operations:
        for attr in op.attributes.values():
            if attr.WhichOneof("value") == "blobFileValue":
                refs.setdefault(attr.blobFileValue.fileName, []).append(int(attr.blobFileValue.offset))
        for b in op.blocks:
            _collect_blob_refs(b, refs)
