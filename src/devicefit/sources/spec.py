"""What a loaded model is: its inputs (:class:`InputSpec`) and the reference it runs (:class:`SourceModel`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.data import bytes_limit

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_INPUT_BYTES = 256 * 1024 * 1024
MAX_INPUT_BYTES_ENV = "DEVICEFIT_MAX_INPUT_BYTES"


def max_input_bytes(override: int | None = None) -> int:
    """The largest input devicefit generates: ``override``, else ``$DEVICEFIT_MAX_INPUT_BYTES``, else 256 MiB.

    Raises:
        InputError: the environment variable is not a positive integer.
    """
    return bytes_limit(MAX_INPUT_BYTES_ENV, DEFAULT_MAX_INPUT_BYTES, override)


DTYPES = ("float32", "float16", "int32", "int64", "bool")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "f32": "float32", "i32": "int32", "i64": "int64"}
_INPUT_RE = re.compile(r"^([A-Za-z_][\w.]*):(\d+(?:x\d+)*)?(?::(\w+))?$")


def split_factory(spec: str) -> tuple[str, str | None]:
    """``"net.py:make"`` -> ``("net.py", "make")``; any other model spec -> ``(spec, None)``."""
    head, sep, tail = spec.rpartition(":")
    if sep and head.endswith(".py") and tail.isidentifier():
        return head, tail
    return spec, None


@dataclass
class InputSpec:
    """One model input.

    Attributes:
        name: input name, as the converted model will expose it.
        shape: static shape (the default shape when the converted input is flexible).
        dtype: numpy dtype name: ``"float32"``, ``"float16"``, ``"int32"``, ``"int64"`` or ``"bool"``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def describe(self) -> str:
        return f"{self.name}:{'x'.join(map(str, self.shape)) or 'scalar'}:{self.dtype}"

    def random(self, rng: np.random.Generator, int_high: int = 8) -> np.ndarray:
        """A random array matching this spec (ones for integer ``*mask*`` inputs)."""
        if self.dtype == "bool":
            return rng.integers(0, 2, self.shape).astype(bool)
        if np.dtype(self.dtype).kind in "iu":
            if "mask" in self.name:
                return np.ones(self.shape, dtype=self.dtype)
            return rng.integers(0, int_high, self.shape).astype(self.dtype)
        return rng.standard_normal(self.shape).astype(self.dtype)


def parse_input_arg(text: str) -> InputSpec:
    """Parse ``--input`` text: ``"ids:1x128:int32"`` or ``"x:1x3x224x224"`` (dtype defaults to float32).

    Raises:
        InputError: the text is not ``name:DIMxDIM[:dtype]`` or the dtype is unknown.
    """
    match = _INPUT_RE.match(text.strip())
    if not match or match.group(2) is None:
        raise InputError(
            f"bad input spec {text!r}; expected name:DIMxDIM[:dtype], e.g. x:1x3x224x224 or ids:1x128:int32"
        )
    name, dims, dtype = match.group(1), match.group(2), (match.group(3) or "float32").lower()
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise InputError(f"bad dtype {dtype!r} in input spec {text!r}; use one of {', '.join(DTYPES)}")
    shape = tuple(int(d) for d in dims.split("x"))
    if any(d <= 0 for d in shape):
        raise InputError(f"bad shape in input spec {text!r}: every dimension must be positive")
    return InputSpec(name=name, shape=shape, dtype=dtype)


def spec_of(name: str, array: np.ndarray) -> InputSpec:
    """The InputSpec describing ``array`` under ``name``."""
    return InputSpec(name=name, shape=tuple(int(d) for d in array.shape), dtype=str(array.dtype))


def check_random_size(spec: InputSpec, max_bytes: int, remedy: str) -> None:
    """Refuse to generate a random array for ``spec`` larger than ``max_bytes``, before allocating it.

    Raises:
        InputError: naming the input, its declared shape and size, the limit and ``remedy`` (what to do).
    """
    size = random_bytes(spec)
    if size > max_bytes:
        shape = "x".join(map(str, spec.shape))
        raise InputError(
            f"input {spec.name!r} is declared {shape} {spec.dtype} ({size / 2**20:.0f} MiB), over the "
            f"{max_bytes / 2**20:.0f} MiB limit for generated inputs; {remedy}"
        )


def random_bytes(spec: InputSpec) -> int:
    """Bytes of a random array for ``spec``, in its own dtype (int64 and float64 take 8 bytes an element);
    Python integers, so a declared 2**40 x 2**40 shape cannot wrap around to a small size."""
    return math.prod(int(d) for d in spec.shape) * np.dtype(spec.dtype).itemsize


def check_random_total(specs: list[InputSpec], remedy: str) -> None:
    """Refuse to generate random arrays for all of ``specs`` when together they exceed the in-memory data
    limit (``$DEVICEFIT_MAX_DATA_BYTES``, :func:`devicefit.sources.data.max_data_bytes`), before allocating.

    Each input alone is bounded by :func:`max_input_bytes`; a model with many inputs just under it would
    still take their sum.

    Raises:
        InputError: naming the inputs' count, their total size, the limit and ``remedy``.
    """
    from devicefit.sources.data import MAX_DATA_BYTES_ENV, max_data_bytes

    limit = max_data_bytes()
    total = sum(random_bytes(s) for s in specs)
    if total > limit:
        raise InputError(
            f"the {len(specs)} generated inputs ({', '.join(s.describe() for s in specs[:4])}"
            f"{', ...' if len(specs) > 4 else ''}) take {total / 2**20:,.0f} MiB together, over the "
            f"{limit / 2**20:,.0f} MiB limit for data held in memory (${MAX_DATA_BYTES_ENV}); {remedy}"
        )


def check_program_inputs_total(inputs: list[Any], remedy: str) -> None:
    """:func:`check_random_total` for an interpreter program's inputs (``devicefit.interp`` TensorSpecs at
    their default shapes, generated as float32 / int32 / bool by ``Program.example_inputs``)."""
    specs = [
        InputSpec(
            t.name,
            tuple(int(d) for d in (t.shape or ())),
            "bool"
            if t.dtype == "bool"
            else "float32"
            if str(t.dtype).startswith(("fp", "float"))
            else "int32",
        )
        for t in inputs
    ]
    check_random_total(specs, remedy)


def random_inputs(specs: list[InputSpec], seed: int = 0, int_high: int = 8) -> dict[str, np.ndarray]:
    """Random example inputs for ``specs`` (deterministic for a seed).

    Raises:
        InputError: an input would exceed :func:`max_input_bytes` (a description declaring 1x3x16384x16384
            must not allocate gigabytes before anything checked it), or all of them together the data limit
            (:func:`check_random_total`).
    """
    limit = max_input_bytes()
    remedy = f"feed real data (--data / --input) or raise the limit with {MAX_INPUT_BYTES_ENV}"
    for s in specs:
        check_random_size(s, limit, remedy)
    check_random_total(specs, "feed real data (--data / --input) or declare fewer or smaller inputs")
    rng = np.random.default_rng(seed)
    return {s.name: s.random(rng, int_high) for s in specs}


@dataclass
class SourceModel:
    """A user's model, loaded, with example inputs and a PyTorch reference to compare against.

    Attributes:
        kind: ``"python"``, ``"exported"``, ``"torchscript"``, ``"coreml"``, ``"hf"`` or ``"pickle"``.
        origin: the user's spec string or path.
        module: eval-mode reference module (None for kind ``"coreml"``).
        exported: the ExportedProgram for kind ``"exported"``, else None.
        mlmodel: the Core ML model for kind ``"coreml"``, else None.
        input_specs: the model's inputs, in call order.
        example_inputs: name -> example array for each input.
        output_names: names of the model's tensor outputs, in order (the converted model uses them).
        labels: labelled targets, when a factory supplies them.
        call_by_keyword: the module is called as ``module(**inputs)`` rather than positionally.
        notes: facts about the loading a user should see (e.g. example values baked in as constants).
        call_template: the call's arguments (a list, or a dict when by keyword) with each input replaced by its
            :class:`InputSlot` and non-tensor values kept as constants; None: the inputs are the arguments.
    """

    kind: str
    origin: str
    module: torch.nn.Module | None
    exported: Any
    mlmodel: Any
    input_specs: list[InputSpec]
    example_inputs: dict[str, np.ndarray]
    output_names: list[str]
    labels: np.ndarray | None = None
    call_by_keyword: bool = False
    notes: list[str] = field(default_factory=list)
    call_template: Any = None

    def reference(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the PyTorch reference (no_grad) on ``feeds``; returns output name -> array.

        Raises:
            InputError: a feed is missing, or the source has no PyTorch module (kind ``"coreml"``).
        """
        import torch

        if self.module is None:
            raise InputError(f"{self.origin} is a Core ML model; it has no PyTorch reference to run")
        with torch.no_grad():
            outputs = self.traceable()(*self.to_tensors(feeds))
        return {
            n: t.detach().float().numpy() if t.is_floating_point() else t.numpy()
            for n, t in zip(self.output_names, outputs)
        }

    def to_tensors(self, feeds: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """Feeds as torch tensors in input order, cast to each input's dtype."""
        import torch

        tensors = []
        for spec in self.input_specs:
            if spec.name not in feeds:
                raise InputError(f"missing input {spec.describe()}; inputs are: {self.describe_inputs()}")
            tensors.append(
                torch.from_numpy(np.ascontiguousarray(np.asarray(feeds[spec.name]).astype(spec.dtype)))
            )
        return tuple(tensors)

    def coreml_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds cast to what a converted Core ML model takes: bool -> float32, int64 -> int32, float64 -> float32."""
        cast = {"b": np.float32, "i": np.int32, "u": np.int32, "f": np.float32}
        out = {}
        for name, value in feeds.items():
            arr = np.asarray(value)
            want = np.float16 if arr.dtype == np.float16 else cast.get(arr.dtype.kind)
            out[name] = arr.astype(want) if want is not None else arr
        return out

    def example_tensors(self) -> tuple[torch.Tensor, ...]:
        return self.to_tensors(self.example_inputs)

    def traceable(self) -> torch.nn.Module:
        """The module wrapped to take positional tensors and return a flat tuple of tensor outputs."""
        if self.module is None:
            raise InputError(f"{self.origin} is a Core ML model; there is no PyTorch module to trace")
        return _make_flat_module(
            self.module, [s.name for s in self.input_specs], self.call_by_keyword, self.call_template
        )

    def describe_inputs(self) -> str:
        return ", ".join(s.describe() for s in self.input_specs)


def flatten_outputs(out: Any) -> list[tuple[str, Any]]:
    """(name, tensor) pairs of a module's output: a tensor, a tuple/list, a dict or a HF ModelOutput.

    Nested tuples / lists / dicts are flattened too, named by their path (``aux_0``, ``aux_1_boxes``): a
    detector's auxiliary outputs are outputs of the converted model, not silently left out. Leaves that are not
    tensors (None, a KV cache object) are skipped.
    """
    import torch

    if isinstance(out, torch.Tensor):
        return [("output", out)]
    if _is_dataclass_instance(out):  # a user's own result type: one output per field, like a ModelOutput
        out = _fields(out)
    if isinstance(out, Mapping):
        return [pair for k, v in out.items() for pair in _nested(str(k), v)]
    if isinstance(out, list | tuple):
        if any(isinstance(v, Mapping | list | tuple) or _is_dataclass_instance(v) for v in out):
            return [pair for i, v in enumerate(out) for pair in _nested(f"output_{i}", v)]
        tensors = [v for v in out if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return [("output", tensors[0])]
        return [(f"output_{i}", v) for i, v in enumerate(tensors)]
    raise ModelLoadError(
        f"model returned {type(out).__name__}; expected a tensor, tuple, list, dict or dataclass of tensors"
    )


def _is_dataclass_instance(value: Any) -> bool:
    """A dataclass instance that is not also a Mapping (a HF ModelOutput is both: its mapping skips Nones)."""
    import dataclasses

    return dataclasses.is_dataclass(value) and not isinstance(value, type | Mapping)


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields by name (not ``asdict``: that deep-copies every tensor)."""
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _nested(name: str, value: Any) -> list[tuple[str, Any]]:
    import torch

    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if _is_dataclass_instance(value):
        value = _fields(value)
    if isinstance(value, Mapping):
        return [pair for k, v in value.items() for pair in _nested(f"{name}_{k}", v)]
    if isinstance(value, list | tuple):
        return [pair for i, v in enumerate(value) for pair in _nested(f"{name}_{i}", v)]
    return []


@dataclass(frozen=True)
class InputSlot:
    """The place of input ``name`` in a :attr:`SourceModel.call_template`."""

    name: str


def call_module(module: Any, names: list[str], args: Any, by_keyword: bool, template: Any = None) -> Any:
    """Call ``module`` with the tensors ``args`` (one per name in ``names``), rebuilding ``template`` if given.

    A template puts each tensor back where the example had it (inside a tuple, list or dict argument) and
    passes the example's non-tensor values (flags, sizes, None) as the constants they were.
    """
    feeds = dict(zip(names, args))
    if template is None:
        return module(**feeds) if by_keyword else module(*args)
    built = _fill(template, feeds)
    return module(**built) if by_keyword else module(*built)


def _fill(template: Any, feeds: dict[str, Any]) -> Any:
    if isinstance(template, InputSlot):
        return feeds[template.name]
    if isinstance(template, Mapping):
        return {k: _fill(v, feeds) for k, v in template.items()}
    if isinstance(template, tuple) and hasattr(template, "_fields"):  # a namedtuple rebuilds field by field
        return type(template)(*(_fill(v, feeds) for v in template))
    if isinstance(template, tuple | list):
        return type(template)(_fill(v, feeds) for v in template)
    return template


def _make_flat_module(module: Any, names: list[str], by_keyword: bool, template: Any = None) -> Any:
    import torch

    class FlatModule(torch.nn.Module):
        """Calls the user's module and flattens its outputs to a tuple (what tracers and exporters want)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = call_module(self.inner, names, args, by_keyword, template)
            # NOTE: an input handed back unchanged (``return x, self.fc(x)``) becomes a view of itself: as the
            # input itself, coremltools renamed the input's var to the output's name and failed ("Main block's
            # input name, 'x', is different from its corresponding var's name, 'output_0'") on both frontends
            return tuple(t.view_as(t) if any(t is a for a in args) else t for _, t in flatten_outputs(out))

    flat = FlatModule()
    flat.training = False  # not .eval(): an ExportedProgram's module() refuses train()/eval()
    return flat
