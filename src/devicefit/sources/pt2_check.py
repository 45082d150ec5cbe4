"""Find what in a ``.pt2`` archive would run code from the file when ``torch.export.load`` reads it.

``torch.export.load`` is not a safe loader. Two kinds of entries carry code:

- **Compiled artifacts**: any entry under ``data/aotinductor/<model>/`` makes it build an
  ``AOTIModelPackageLoader``, which extracts the folder, compiles ``.cpp`` files and ``dlopen``s ``.so``
  files: a library constructor runs before any check. Native libraries or sources anywhere else in the
  archive (by suffix or by ELF / Mach-O / PE magic) are treated the same way, as a loader that finds them
  is one torch release away.
- **Pickles**: a weight or constant marked ``use_pickle`` in the archive's ``*_weights_config.json`` /
  ``*_constants_config.json`` goes to ``torch.load(weights_only=False)``, a non-tensor constant
  (``custom_obj_*`` / ``opaque_obj_*``) to the TorchScript unpickler or ``pickle.loads``, and any ``.pt``
  member (sample inputs, legacy weights, the 2.7 layout) to ``torch.load`` that falls back to
  ``weights_only=False`` when the safe load fails.

:func:`code_reason` names the first such entry; the caller refuses the file unless the user trusts it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

# torch.export.pt2_archive.constants.TENSOR_CONSTANT_FILENAME_PREFIX: the only constants loaded as raw bytes.
_TENSOR_CONSTANT_PREFIX = "tensor_"
# torch.export.pt2_archive.constants.AOTINDUCTOR_DIR, relative to the archive's root folder.
_AOTI_DIR = "data/aotinductor/"
# Suffixes of native libraries, objects and sources a compiler or dynamic loader would take.
_NATIVE_SUFFIXES = (
    ".so", ".dylib", ".dll", ".pyd", ".o", ".obj", ".a", ".lib",
    ".c", ".cc", ".cpp", ".cxx", ".h", ".hpp", ".cu", ".cubin", ".ptx", ".hsaco", ".fatbin", ".spv",
)  # fmt: skip
# Leading bytes of shared objects: ELF and Mach-O (32/64 bit, both byte orders, fat). Four bytes, so raw
# weight bytes match by chance about once in 2**30 files; PE's two-byte "MZ" would match far too often.
_NATIVE_MAGIC = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


def code_reason(path: Path) -> str | None:
    """Why loading the archive at ``path`` would run code from it, or None when it would not.

    Every zip entry is read, duplicates included (zip readers disagree on which duplicate wins).
    Compiled artifacts are reported before pickles: they run on load, without any unpickling.
    """
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            refuse_bomb(path, info)
        for info in infos:
            reason = _compiled_reason(info.filename, archive, info)
            if reason is not None:
                return reason
        for info in infos:
            name = info.filename
            if _is_payload_config(name):
                reason = _config_reason(name, archive.read(info))
            elif _torch_loads(name):
                reason = _torch_file_reason(name, archive.read(info))
            else:
                reason = None
            if reason is not None:
                return reason
    return None


# torch writes every entry uncompressed (stored, so that tensors can be memory-mapped); an entry that
# decompresses to over this many times its stored size, and to more than _BOMB_MIN_BYTES, is a zip bomb
# (zeros deflate about 1000:1, real weights barely compress).
_BOMB_RATIO = 100
_BOMB_MIN_BYTES = 16 << 20


def refuse_bomb(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse an entry that would decompress into far more memory than the archive holds, before reading it.

    Raises:
        ModelLoadError: naming the entry and both sizes.
    """
    from devicefit.errors import ModelLoadError

    if info.compress_type == zipfile.ZIP_STORED or info.file_size <= _BOMB_MIN_BYTES:
        return
    if info.file_size > _BOMB_RATIO * max(info.compress_size, 1):
        raise ModelLoadError(
            f"{path.name}: entry {info.filename[:120]!r} would decompress {info.compress_size:,} bytes into "
            f"{info.file_size:,} (torch writes archives uncompressed); the archive is corrupted or crafted, "
            "re-export it with torch.export.save"
        )


def unsafe_pickle_reason(path: Path) -> str | None:
    """Former name of :func:`code_reason` (it now also reports compiled artifacts)."""
    return code_reason(path)


def _in_archive(name: str) -> str:
    """The entry's path below the archive's root folder (torch's reader strips that first component)."""
    return name.split("/", 1)[1] if "/" in name else name


def _compiled_reason(name: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    inner = _in_archive(name)
    if inner.startswith(_AOTI_DIR) or f"/{_AOTI_DIR}" in f"/{inner}":
        return f"{name} is an AOTInductor compiled artifact (torch compiles and dlopens data/aotinductor/)"
    if name.lower().endswith(_NATIVE_SUFFIXES):
        return f"{name} is native code (a compiled library or C/C++ source)"
    with archive.open(info) as member:
        head = member.read(4)
    if head.startswith(_NATIVE_MAGIC):
        return f"{name} is an executable or shared library (by its leading bytes)"
    return None


def _is_payload_config(name: str) -> bool:
    return name.endswith("_config.json") and ("data/weights/" in name or "data/constants/" in name)


def _torch_loads(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".pt") or (
        base.startswith("serialized_") and base != "serialized_exported_program.json"
    )


def _config_reason(name: str, data: bytes) -> str | None:
    try:
        entries = json.loads(data)["config"]
        items = list(entries.items())
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return f"its {name} is not a payload config torch can read safely"
    constants = "data/constants/" in name
    for fqn, meta in items:
        if not isinstance(meta, dict):
            return f"its {name} entry {fqn!r} is malformed"
        if meta.get("use_pickle"):
            return f"{fqn!r} is stored as a Python pickle ({name} sets use_pickle)"
        if constants and not str(meta.get("path_name", "")).startswith(_TENSOR_CONSTANT_PREFIX):
            return f"constant {fqn!r} is a pickled Python object ({meta.get('path_name')!r} in {name})"
    return None


def _torch_file_reason(name: str, data: bytes) -> str | None:
    import torch

    if not data:
        return None
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        return f"{name} is not a plain tensor file (torch would unpickle it with weights_only=False)"
    return None
