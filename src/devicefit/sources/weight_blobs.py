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
from typing import Any

from devicefit.errors import ModelLoadError

BLOB_SENTINEL = 0xDEADBEEF
METADATA_BYTES = 64
STORAGE_HEADER_BYTES = 64
# Core ML's own format tops out far below this; the bound only keeps arithmetic on offsets sane.
BLOB_FILE_MAX_BYTES = 1 << 40


def check_blob_file(
    path: Path, metadata_offsets: list[int], origin: str, size: int | None = None
) -> dict[int, int]:
    """Raise ModelLoadError unless every referenced blob lies inside ``path`` (of ``size`` bytes).

    Returns:
        metadata offset -> the blob's size in bytes, as its header declares it.
    """
    sizes: dict[int, int] = {}
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
            sizes[off] = nbytes
    except OSError as e:
        raise ModelLoadError(f"{origin}: cannot read weight file {path.name}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return sizes


# Bits per element of each MIL proto DataType a blob can hold (coremltools.proto.MIL_pb2.DataType).
BITS_BY_PROTO_DTYPE = {
    1: 8,  # BOOL
    10: 16,  # FLOAT16
    11: 32,  # FLOAT32
    12: 64,  # FLOAT64
    13: 16,  # BFLOAT16
    21: 8,  # INT8
    22: 16,  # INT16
    23: 32,  # INT32
    24: 64,  # INT64
    25: 4,  # INT4
    31: 8,  # UINT8
    32: 16,  # UINT16
    33: 32,  # UINT32
    34: 64,  # UINT64
    35: 4,  # UINT4
    36: 2,  # UINT2
    37: 1,  # UINT1
    38: 6,  # UINT6
    39: 3,  # UINT3
    40: 8,  # FLOAT8E4M3FN
    41: 8,  # FLOAT8E5M2
}
# Slack over a blob's declared type before it counts as a lie (sub-byte packing rounds up).
BLOB_SLACK_BYTES = 64


def declared_bytes(value_type: Any) -> int | None:
    """The bytes a blob of this proto ``ValueType`` holds, or None when its type does not say (a symbolic
    dimension, a dtype not listed)."""
    if value_type.WhichOneof("type") != "tensorType":
        return None
    tensor = value_type.tensorType
    bits = BITS_BY_PROTO_DTYPE.get(int(tensor.dataType))
    if bits is None:
        return None
    count = 1
    for dim in tensor.dimensions:
        if dim.WhichOneof("dimension") != "constant":
            return None
        count *= int(dim.constant.size)
    return (count * bits + 7) // 8


def physical_memory_bytes() -> int | None:
    """This machine's RAM, or None where the OS does not say."""
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page if pages > 0 and page > 0 else None
