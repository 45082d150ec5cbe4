"""Sanity checks on an ML Program weight file (``weight.bin``) before coremltools' C++ reader opens it.

The reader trusts offsets and sizes; a truncated or corrupted file could crash the process. The layout
(coremltools ``MILBlob``): a 64-byte storage header (``count`` u32, ``version`` u32, padding), then per blob
a 64-byte metadata record starting with the sentinel ``0xDEADBEEF`` (u32), ``mil_dtype`` (u32),
``sizeInBytes`` (u64), ``offset`` (u64) of the data.

The caller (``coreml_package.py``) has already checked that ``path`` is a regular file inside the package, so
reading it cannot block; only the 24 bytes of each referenced metadata record are read here.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from devicefit.errors import ModelLoadError

BLOB_SENTINEL = 0xDEADBEEF
METADATA_BYTES = 64
STORAGE_HEADER_BYTES = 64
# Core ML's own format tops out far below this; the bound only keeps arithmetic on offsets sane.
BLOB_FILE_MAX_BYTES = 1 << 40


def check_blob_file(path: Path, metadata_offsets: list[int], origin: str, size: int | None = None) -> None:
    """Raise ModelLoadError unless every referenced blob lies inside ``path`` (of ``size`` bytes)."""
    if size is None:
        if not path.is_file():
            raise ModelLoadError(f"{origin}: weight file {path.name} is missing; the package is incomplete")
        size = path.stat().st_size
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ModelLoadError(f"{origin}: cannot open weight file {path.name}: {e.strerror or e}") from None
    try:
        for off in sorted(set(metadata_offsets)):
            if off < STORAGE_HEADER_BYTES or off + METADATA_BYTES > size:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is truncated or the program is corrupted ({size} bytes, "
                    f"a blob's header is at {off}); re-export the model"
                )
            record = os.pread(fd, 24, off)
            if len(record) != 24:
                raise ModelLoadError(f"{origin}: weight file {path.name} shrank while being read; try again")
            sentinel, _dtype, nbytes, data_off = struct.unpack("<IIQQ", record)
            if sentinel != BLOB_SENTINEL:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is corrupted (bad blob header at offset {off}); "
                    "re-export the model"
                )
            if data_off < off + METADATA_BYTES or data_off + nbytes > size:
                raise ModelLoadError(
                    f"{origin}: weight file {path.name} is truncated or corrupted (blob at {off} needs bytes "
                    f"{data_off}..{data_off + nbytes}, file has {size}); re-export the model"
                )
    except OSError as e:
        raise ModelLoadError(f"{origin}: cannot read weight file {path.name}: {e.strerror or e}") from None
    finally:
        os.close(fd)
