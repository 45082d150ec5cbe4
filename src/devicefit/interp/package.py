"""Former home of the Core ML package reader, now :mod:`devicefit.sources.coreml_package` (``devicefit
check`` and ``compress`` read packages in the sources stage, which may not import the interpreter); kept
importable from here."""

from __future__ import annotations

from devicefit.sources.coreml_package import (
    MANIFEST_MAX_BYTES,
    MODEL_MAX_BYTES,
    check_weight_blobs,
    read_spec,
)

__all__ = ["MANIFEST_MAX_BYTES", "MODEL_MAX_BYTES", "check_weight_blobs", "read_spec"]
