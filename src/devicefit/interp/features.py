"""Feature specs: a model description's inputs, outputs and states as :class:`TensorSpec`."""

from __future__ import annotations

from typing import Any

from devicefit.dtypes import proto_array_mil
from devicefit.errors import ModelLoadError
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


def _dims(shape: tuple[int | None, ...]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


def agree_with_program(spec: TensorSpec, program_shape: tuple[int | None, ...] | None) -> None:
    """Check a described input / state against the program's own declaration of it (None dims: symbolic).

    The description is only metadata; the program is what runs. A description that disagrees in rank or
    in a fixed dimension (a hand-edited or corrupted package: 1x3x2048x2048 declared over a 48x48
    program) would otherwise make devicefit generate or accept inputs the program cannot take.
    A description without a shape gets the program's.

    Raises:
        ModelLoadError: naming the input, the described shape(s) and the program's shape.
    """
    if program_shape is None:
        return
    if spec.shape is None and not spec.is_flexible:
        if all(d is not None for d in program_shape):
            spec.shape = tuple(int(d) for d in program_shape if d is not None)
        return
    candidates: list[tuple[int, ...]] = list(spec.enumerated_shapes or [])
    if spec.shape is not None:
        candidates.append(spec.shape)
    bad = next((c for c in candidates if not _fits(c, program_shape)), None)
    if bad is None and spec.shape_range is not None:
        fixed = zip(spec.shape_range, program_shape)
        if len(spec.shape_range) != len(program_shape) or any(
            d is not None and not (lo <= d and (hi < 0 or d <= hi)) for (lo, hi), d in fixed
        ):
            bad = tuple(lo for lo, _ in spec.shape_range)
    if bad is not None:
        raise ModelLoadError(
            f"the model description declares {'state' if spec.kind == 'state' else 'input'} {spec.name!r} as {spec.describe()}, but the program "
            f"takes {_dims(program_shape)}; the package's description and program disagree (a corrupted or "
            "hand-edited package): re-export it"
        )


def _fits(shape: tuple[int, ...], program_shape: tuple[int | None, ...]) -> bool:
    return len(shape) == len(program_shape) and all(d is None or d == s for s, d in zip(shape, program_shape))
