"""Find what in a ``.pt2`` archive ``torch.export.load`` would unpickle with full Python pickle.

``torch.export.load`` is not a safe loader: a weight or constant marked ``use_pickle`` in the archive's
``*_weights_config.json`` / ``*_constants_config.json`` goes to ``torch.load(weights_only=False)``, a
non-tensor constant (``custom_obj_*`` / ``opaque_obj_*``) to the TorchScript unpickler or ``pickle.loads``,
and any ``.pt`` member (sample inputs, legacy weights, the 2.7 layout) to ``torch.load`` that falls back to
``weights_only=False`` when the safe load fails. Each of these runs code from the file, so
:func:`unsafe_pickle_reason` names the first one; the caller refuses the file unless the user trusts it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

# torch.export.pt2_archive.constants.TENSOR_CONSTANT_FILENAME_PREFIX: the only constants loaded as raw bytes.
_TENSOR_CONSTANT_PREFIX = "tensor_"


def unsafe_pickle_reason(path: Path) -> str | None:
    """Why loading the archive at ``path`` would unpickle untrusted code, or None when it would not.

    Every zip entry is read, duplicates included (zip readers disagree on which duplicate wins).
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
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
    except (ValueError, KeyError, TypeError, AttributeError):
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
