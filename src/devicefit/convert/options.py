"""Conversion options and their mapping onto ``ct.convert`` arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from devicefit.errors import InputError

if TYPE_CHECKING:
    from devicefit.sources import InputSpec, SourceModel

TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18")
PRECISIONS = ("fp16", "fp32", "mixed")
COLOR_LAYOUTS = ("RGB", "BGR", "G")
FRONTEND_CHOICES = ("auto", "torchscript", "torch.export")


@dataclass
class ImageInputOptions:
    """An input fed as an image: ``pixel * scale + bias`` per channel.

    Attributes:
        scale: multiplier applied to every pixel value.
        bias: per-channel offsets added after scaling (one value for ``"G"``).
        color_layout: ``"RGB"``, ``"BGR"`` or ``"G"`` (grayscale).
    """

    scale: float = 1.0
    bias: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    color_layout: str = "RGB"


@dataclass
class FlexibleShape:
    """Shapes an input accepts besides its example shape.

    Give either ``enumerated`` (a list of full shapes) or ``ranges`` (dim index -> (lo, hi), hi -1 = no bound).

    Attributes:
        enumerated: the exact shapes allowed.
        ranges: per-dimension bounds; dimensions not listed stay fixed.
        default: the shape Core ML uses when none is given (defaults to the example shape).
    """

    enumerated: list[tuple[int, ...]] | None = None
    ranges: dict[int, tuple[int, int]] | None = None
    default: tuple[int, ...] | None = None


@dataclass
class ConvertOptions:
    """How to convert.

    Attributes:
        target: minimum deployment target, ``"iOS15"`` .. ``"iOS18"``.
        precision: ``"fp16"``, ``"fp32"`` or ``"mixed"`` (fp16, with ``fp32_ops`` kept in fp32).
        fp32_ops: MIL op types (``"softmax"``) or op names kept in fp32 under fp16 precision.
        image_inputs: input name -> ImageInputOptions, for inputs fed as images.
        flexible: input name -> FlexibleShape.
        output_names: names for the converted outputs (defaults to the source's output names).
        frontend: ``"auto"`` (TorchScript, then torch.export), ``"torchscript"`` or ``"torch.export"``.
        fp16_safe_constants: under fp16 / mixed precision, map constants beyond the fp16 range (``-inf``,
            ``finfo.min`` mask fills) to fp16-safe values (see :mod:`devicefit.convert.fp16_constants`).
    """

    target: str = "iOS17"
    precision: str = "fp16"
    fp32_ops: list[str] = field(default_factory=list)
    image_inputs: dict[str, ImageInputOptions] = field(default_factory=dict)
    flexible: dict[str, FlexibleShape] = field(default_factory=dict)
    output_names: list[str] | None = None
    frontend: str = "auto"
    fp16_safe_constants: bool = True

    def validate(self, source: SourceModel | None = None) -> None:
        """Check values (and input / output names against ``source``); raises InputError."""
        _choice("target", self.target, TARGETS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("frontend", self.frontend, FRONTEND_CHOICES)
        if self.precision == "mixed" and not self.fp32_ops:
            raise InputError("precision 'mixed' needs fp32_ops (--fp32-op OP) naming ops to keep in fp32")
        for name, image in self.image_inputs.items():
            _choice(f"color_layout of image input {name!r}", image.color_layout, COLOR_LAYOUTS)
            channels = 1 if image.color_layout == "G" else 3
            if len(image.bias) not in (1, channels):
                raise InputError(
                    f"image input {name!r}: bias needs {channels} value(s), got {len(image.bias)}"
                )
        for name, flex in self.flexible.items():
            if (flex.enumerated is None) == (flex.ranges is None):
                raise InputError(f"flexible input {name!r}: give exactly one of enumerated shapes or ranges")
        if source is None:
            return
        specs = {s.name: s for s in source.input_specs}
        for name in [*self.image_inputs, *self.flexible]:
            if name not in specs:
                raise InputError(
                    f"no input named {name!r}; the model's inputs are: {source.describe_inputs()}"
                )
        for name, image in self.image_inputs.items():
            _check_image_input(specs[name], image)
        for name, flex in self.flexible.items():
            _check_flexible(specs[name], flex)
        if self.output_names is not None and len(self.output_names) != len(source.output_names):
            raise InputError(
                f"{len(self.output_names)} output name(s) given, but the model has {len(source.output_names)} "
                f"output(s): {', '.join(source.output_names)}"
            )


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_image_input(spec: InputSpec, image: ImageInputOptions) -> None:
    channels = 1 if image.color_layout == "G" else 3
    if len(spec.shape) != 4 or spec.shape[1] != channels or not spec.dtype.startswith("float"):
        raise InputError(
            f"image input {spec.name!r} must be float N x {channels} x H x W for {image.color_layout}; "
            f"it is {spec.describe()}"
        )


def _check_flexible(spec: InputSpec, flex: FlexibleShape) -> None:
    rank = len(spec.shape)
    for shape in flex.enumerated or []:
        if len(shape) != rank:
            raise InputError(f"flexible input {spec.name!r}: shape {tuple(shape)} is not rank {rank}")
    for dim, (lo, hi) in (flex.ranges or {}).items():
        if not -rank <= dim < rank:
            raise InputError(f"flexible input {spec.name!r}: dimension {dim} out of range for rank {rank}")
        if lo < 1 or (hi != -1 and hi < lo):
            raise InputError(f"flexible input {spec.name!r}: bad range ({lo}, {hi}) for dimension {dim}")


# --------------------------------------------------------------------------- mapping to coremltools
def ct_inputs(ct: Any, source: SourceModel, options: ConvertOptions) -> list[Any]:
    """``ct.TensorType`` / ``ct.ImageType`` per input, with flexible shapes."""
    result = []
    for spec in source.input_specs:
        shape = _ct_shape(ct, spec, options.flexible.get(spec.name))
        image = options.image_inputs.get(spec.name)
        if image is not None:
            layout = {"RGB": ct.colorlayout.RGB, "BGR": ct.colorlayout.BGR, "G": ct.colorlayout.GRAYSCALE}
            bias: Any = list(image.bias) if image.color_layout != "G" else float(image.bias[0])
            if image.color_layout != "G" and len(image.bias) == 1:
                bias = [float(image.bias[0])] * 3
            result.append(
                ct.ImageType(
                    name=spec.name,
                    shape=shape,
                    scale=float(image.scale),
                    bias=bias,
                    color_layout=layout[image.color_layout],
                )
            )
        else:
            result.append(ct.TensorType(name=spec.name, shape=shape, dtype=_ct_dtype(spec.dtype)))
    return result


def _ct_dtype(dtype: str) -> Any:
    # Core ML has no int64 / fp64 inputs; ints go in as int32, floats as fp32 (fp16 io is a later choice).
    if dtype == "bool":
        return bool
    return np.int32 if np.dtype(dtype).kind in "iu" else np.float32


def _ct_shape(ct: Any, spec: InputSpec, flex: FlexibleShape | None) -> Any:
    if flex is None:
        return spec.shape
    default = tuple(flex.default or spec.shape)
    if flex.enumerated is not None:
        shapes = [tuple(s) for s in flex.enumerated]
        if default not in shapes:
            shapes.insert(0, default)
        return ct.EnumeratedShapes(shapes=shapes, default=default)
    ranges = {d % len(spec.shape): r for d, r in (flex.ranges or {}).items()}
    dims: list[Any] = []
    for i, size in enumerate(default):
        if i in ranges:
            lo, hi = ranges[i]
            dims.append(
                ct.RangeDim(
                    lower_bound=lo, upper_bound=hi, default=min(max(size, lo), hi if hi > 0 else size)
                )
            )
        else:
            dims.append(size)
    return ct.Shape(shape=dims)


def saved_op_name(name: str) -> str:
    """The name an op gets in the saved program (coremltools' ``sanitize_name_strings`` pass, op prefix ``op_``)."""
    import re

    clean = re.sub("[^a-zA-Z0-9_]", "_", name)
    return "op_" + clean if re.match("[^a-zA-Z_]", clean) else clean


def saved_value_name(name: str) -> str:
    """The name a model input gets in the saved program (coremltools' ``sanitize_name_strings`` pass: characters
    outside ``[a-zA-Z0-9_]`` replaced, and MIL's reserved words, ``state``, ``tensor``, ``string``, ``bool``,
    ``list`` ..., suffixed ``_workaround``)."""
    from coremltools.converters.mil.mil.passes.defs.preprocess import NameSanitizer

    return str(NameSanitizer(prefix="var_").sanitize_name(name))


def ct_convert_kwargs(ct: Any, options: ConvertOptions) -> dict[str, Any]:
    """``minimum_deployment_target`` and ``compute_precision`` for ``ct.convert``."""
    if options.precision == "fp32":
        precision = ct.precision.FLOAT32
    elif options.fp32_ops:
        keep = set(options.fp32_ops)
        # NOTE: the fp16 pass sees the frontend's raw op names ("19", "h.1"); the saved program (and every
        # report) shows them sanitized ("op_19", "h_1"). Either spelling selects the op.
        precision = ct.transform.FP16ComputePrecision(
            op_selector=lambda op: (
                op.op_type not in keep and op.name not in keep and saved_op_name(op.name) not in keep
            )
        )
    else:
        precision = ct.precision.FLOAT16
    return {
        "minimum_deployment_target": getattr(ct.target, options.target),
        "compute_precision": precision,
        "convert_to": "mlprogram",
    }


def ct_outputs(ct: Any, source: SourceModel, options: ConvertOptions) -> list[Any]:
    names = options.output_names or source.output_names
    return [ct.TensorType(name=n) for n in names]
