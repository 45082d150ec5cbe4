"""Feature specs: a model description's inputs, outputs and states as :class:`TensorSpec`."""

from __future__ import annotations

from typing import Any

from devicefit.dtypes import proto_array_mil
from devicefit.interp.plan import TensorSpec


def feature_spec(feature: Any, dtype_hint: str | None) -> TensorSpec:
    """The TensorSpec of one proto FeatureDescription (``dtype_hint``: the program's dtype, preferred)."""
    t = feature.type
    kind = t.WhichOneof("Type")
    if kind == "imageType":
        img = t.imageType
        channels = 1 if img.colorSpace == 10 else 3  # GRAYSCALE == 10
        shape: tuple[int, ...] = (1, channels, int(img.height), int(img.width))
        spec = TensorSpec(feature.name, dtype_hint or "fp32", shape, kind="image")
        flex = img.WhichOneof("SizeFlexibility")
        if flex == "enumeratedSizes":
            spec.enumerated_shapes = [
                (1, channels, int(z.height), int(z.width)) for z in img.enumeratedSizes.sizes
            ]
        elif flex == "imageSizeRange":
            rng = img.imageSizeRange
            spec.shape_range = [
                (1, 1),
                (channels, channels),
                (int(rng.heightRange.lowerBound), int(rng.heightRange.upperBound)),
                (int(rng.widthRange.lowerBound), int(rng.widthRange.upperBound)),
            ]
        return spec
    if kind == "stateType":
        arr = t.stateType.arrayType
        return TensorSpec(
            feature.name,
            dtype_hint or proto_array_mil(arr.dataType) or "fp16",
            tuple(int(d) for d in arr.shape),
            kind="state",
        )
    if kind != "multiArrayType":
        return TensorSpec(feature.name, dtype_hint, None, kind=kind or "unknown")
    arr = t.multiArrayType
    shape = tuple(int(d) for d in arr.shape)
    spec = TensorSpec(feature.name, dtype_hint or proto_array_mil(arr.dataType), shape or None)
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        spec.shape_range = [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
    elif flex == "enumeratedShapes":
        spec.enumerated_shapes = [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes]
        if not spec.shape:
            spec.shape = spec.enumerated_shapes[0]
    if spec.shape_range and not spec.shape:
        spec.shape = tuple(lo for lo, _ in spec.shape_range)
    return spec


def function_description(spec: Any, name: str) -> Any:
    """The description of function ``name`` (the model's own for single-function models), or None."""
    desc = spec.description
    if len(desc.functions):
        for f in desc.functions:
            if f.name == name:
                return f
        return None
    return desc
