"""torch -> Core ML conversion: one-pass op-support scan, extra op translations ("rescue"), options.

::

    from devicefit.convert import ConvertOptions, convert, scan
    report = scan(source)          # every unsupported op at once, and which frontend converts
    result = convert(source, ConvertOptions(target="iOS17", precision="fp16"))
    result.save("model.mlpackage")
"""

from __future__ import annotations

from devicefit.convert.core import ConversionError, ConversionResult, convert
from devicefit.convert.options import ConvertOptions, FlexibleShape, ImageInputOptions
from devicefit.convert.rescue import RESCUES, rescue_translations
from devicefit.convert.scan import FrontendResult, ScanReport, UnsupportedOp, scan

__all__ = [
    "RESCUES",
    "ConversionError",
    "ConversionResult",
    "ConvertOptions",
    "FlexibleShape",
    "FrontendResult",
    "ImageInputOptions",
    "ScanReport",
    "UnsupportedOp",
    "convert",
    "rescue_translations",
    "scan",
]
