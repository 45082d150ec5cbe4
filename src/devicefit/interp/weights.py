"""Former home of the weight-file checks, now :mod:`devicefit.sources.weight_blobs`; kept importable here."""

from __future__ import annotations

from devicefit.sources.weight_blobs import (
    BLOB_FILE_MAX_BYTES,
    BLOB_SENTINEL,
    METADATA_BYTES,
    STORAGE_HEADER_BYTES,
    check_blob_file,
)

__all__ = [
    "BLOB_FILE_MAX_BYTES",
    "BLOB_SENTINEL",
    "METADATA_BYTES",
    "STORAGE_HEADER_BYTES",
    "check_blob_file",
]
