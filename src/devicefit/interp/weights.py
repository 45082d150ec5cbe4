"""Sanity checks on an ML Program weight file (``weight.bin``) before coremltools' C++ reader opens it.

The reader trusts offsets and sizes; a truncated or corrupted file could crash the process. The layout
(coremltools ``MILBlob``): a 64-byte storage header (``count`` u32, ``version`` u32, padding), then per blob
a 64-byte metadata record starting with the sentinel ``0xDEADBEEF`` (u32), ``mil_dtype`` (u32),
``sizeInBytes`` (u64), ``offset`` (u64) of the data.
"""

from __future__ import annotations

import struct
from pathlib import Path

from devicefit.errors import ModelLoadError

BLOB_SENTINEL = 0xDEADBEEF
METADATA_BYTES = 64


def check_blob_file(path: Path, metadata_offsets: list[int], origin: str) -> None:
    """Raise ModelLoadError unless every referenced blob lies inside ``path``."""
    if not path.exists():
        raise ModelLoadError(f"{origin}: weight file {path.name} is missing; the package is incomplete")
    size = path.stat().st_size
    with path.open("rb") as f:
        for off in sorted(set(metadata_offsets)):
            if off + METADATA_BYTES > size:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is truncated ({size} bytes, a blob starts at {off}); "
                    "re-export the model"
                )
            f.seek(off)
            sentinel, _dtype, nbytes, data_off = struct.unpack("<IIQQ", f.read(24))
            if sentinel != BLOB_SENTINEL:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is corrupted (bad blob header at offset {off}); "
                    "re-export the model"
                )
            if data_off + nbytes > size:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is truncated (blob at {off} needs bytes up to "
                    f"{data_off + nbytes}, file has {size}); re-export the model"
                )
