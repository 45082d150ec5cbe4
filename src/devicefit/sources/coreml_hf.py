"""Loaders for a Core ML model (``.mlpackage`` / ``.mlmodel``) and a local Hugging Face model folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.dtypes import proto_array_numpy
from devicefit.errors import InputError, ModelLoadError
from devicefit.sources.module import from_module, one_line
from devicefit.sources.spec import InputSpec, SourceModel, random_inputs

HF_DEFAULT_SEQ = 128


def load_coreml(spec: str, path: Path, inputs: list[InputSpec] | None) -> SourceModel:
    """A SourceModel for a Core ML model (no PyTorch reference), inputs from its description.

    The package is read and checked by :mod:`devicefit.sources.coreml_package` first: coremltools follows
    whatever path its Manifest.json names (``../../dev/zero``, a FIFO) and its C++ blob reader trusts every
    offset in the weight file.

    Raises:
        ModelLoadError: the package is missing, corrupted or crafted (see ``coreml_package.read_spec``).
    """
    from devicefit._lazy import coremltools
    from devicefit.sources.coreml_package import check_package

    check_package(path)
    ct = coremltools()
    try:
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read Core ML model {path}: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    described = mlmodel.get_spec().description
    specs = inputs or [_coreml_input_spec(i) for i in described.input]
    return SourceModel(
        kind="coreml",
        origin=spec,
        module=None,
        exported=None,
        mlmodel=mlmodel,
        input_specs=list(specs),
        example_inputs=random_inputs(list(specs)),
        output_names=[o.name for o in described.output],
    )


def _coreml_input_spec(feature: Any) -> InputSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        shape = tuple(int(d) for d in array.shape)
        if not shape and array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            shape = tuple(int(d) for d in array.enumeratedShapes.shapes[0].shape)
        elif not shape and array.WhichOneof("ShapeFlexibility") == "shapeRange":
            shape = tuple(int(r.lowerBound) for r in array.shapeRange.sizeRanges)
        dtype = proto_array_numpy(array.dataType)
        return InputSpec(feature.name, shape, dtype.name if dtype is not None else "float32")
    if kind == "imageType":
        image = feature.type.imageType
        channels = 1 if image.colorSpace == 10 else 3  # 10 = GRAYSCALE
        return InputSpec(feature.name, (1, channels, int(image.height), int(image.width)), "float32")
    raise ModelLoadError(f"Core ML input {feature.name!r} has type {kind}, which devicefit cannot feed")


def load_hf(spec: str, path: Path, inputs: list[InputSpec] | None) -> SourceModel:
    """A SourceModel for a local Hugging Face folder (never runs code shipped with it).

    Raises:
        ModelLoadError: transformers is missing, the folder does not load, or its weights do not cover the model.
    """
    try:
        import transformers
    except ImportError as exc:
        raise ModelLoadError(f"{path} is a Hugging Face model; install transformers to load it") from exc
    try:
        # never run code shipped with the model folder (auto_map); weights load with weights_only (transformers)
        with quiet_transformers(transformers):
            config = transformers.AutoConfig.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False
            )
            check_declared_size(path, transformers, config)
            net, loading = _model_class(transformers, config).from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False, output_loading_info=True
            )
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load Hugging Face model {path}: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    check_weights_cover(path, loading)
    specs = inputs or _default_specs(path, config, str(getattr(net, "main_input_name", "input_ids")))
    vocab = int(getattr(config, "vocab_size", 8) or 8)
    arrays = random_inputs(list(specs), int_high=vocab)
    example = {n: _torch_of(a) for n, a in arrays.items()}
    return from_module(spec, "hf", net, example, None, int_high=vocab)


HF_DEFAULT_AUDIO_SAMPLES = 16000  # one second at the 16 kHz wav2vec2 / HuBERT / WavLM expect


def _default_specs(path: Path, config: Any, main_input: str) -> list[InputSpec]:
    """The inputs to try a folder's model with when none are declared, by the kind of its main input.

    Text models take ``input_ids`` (and an attention mask), vision models ``pixel_values`` at the config's
    image size, raw-waveform audio models ``input_values`` (one second at 16 kHz); anything else (spectrogram
    features, ...) has no size devicefit can read off every config.

    NOTE: every folder was fed ``input_ids`` / ``attention_mask``: a saved DeiT failed with an AttributeError
    from inside its forward and exit 2, naming neither its input nor the ``--input`` that would fix it.

    Raises:
        InputError: the main input is of another kind; says which ``--input`` to declare.
    """
    if main_input == "input_ids":
        seq = min(
            HF_DEFAULT_SEQ, int(getattr(config, "max_position_embeddings", HF_DEFAULT_SEQ) or HF_DEFAULT_SEQ)
        )
        return [InputSpec("input_ids", (1, seq), "int32"), InputSpec("attention_mask", (1, seq), "int32")]
    if main_input == "input_values":
        return [InputSpec(main_input, (1, HF_DEFAULT_AUDIO_SAMPLES), "float32")]
    size = getattr(config, "image_size", None)
    if isinstance(size, dict):  # some processors' configs: {"height": 224, "width": 224}
        size = (size.get("height"), size.get("width"))
    height, width = (size, size) if isinstance(size, int) else tuple(size or (None, None))[:2]
    channels = int(getattr(config, "num_channels", 3) or 3)
    if main_input == "pixel_values" and isinstance(height, int) and isinstance(width, int):
        return [InputSpec("pixel_values", (1, channels, height, width), "float32")]
    raise InputError(
        f"{path.name} is a Hugging Face {type(config).__name__.removesuffix('Config')} model whose main input is "
        f"{main_input!r}, whose shape devicefit cannot read off its config; declare it: --input "
        f"{main_input}:DIMxDIM[:DTYPE] (e.g. the shape its feature extractor produces)"
    )


def _model_class(transformers: Any, config: Any) -> Any:
    """The class the folder was saved from (``config.architectures``, e.g. ``BertForSequenceClassification``).

    ``AutoModel`` builds the base model: a classifier folder lost its head (outputs ``last_hidden_state``, not
    ``logits``) and its head's weights were silently dropped. Only classes transformers itself defines are used
    (never code shipped with the folder); otherwise ``AutoModel``.
    """
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, str(name), None)
        if isinstance(cls, type) and hasattr(cls, "from_pretrained"):
            return cls
    return transformers.AutoModel


def _torch_of(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array)


# Weight files transformers reads; every parameter must come from one of them (see check_weights_cover).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
# The fewest bytes a stored parameter can take (4-bit quantized); anything denser is not a weight file.
_MIN_BYTES_PER_PARAMETER = 0.5
_ALLOCATION_WORTH_REFUSING = 1 << 30


# More submodules than any real checkpoint of this little weight builds: a config of a few bytes declaring a
# million layers kept even the meta-device count below running for hours (24 ms per BERT layer).
_MODULES_WORTH_REFUSING = 2_000
_MIN_BYTES_PER_MODULE = 1024


class _DeclaredTooLarge(Exception):
    """Raised from the registration hooks to stop building the skeleton as soon as it is clearly too large."""


def check_declared_size(path: Path, transformers: Any, config: Any) -> None:
    """Refuse a config.json declaring far more parameters (or submodules) than the folder's weight files hold.

    transformers allocates (and randomly initialises) every parameter before reading the weights, so a
    crafted config of a few bytes (``vocab_size: 2000000, hidden_size: 4096``) would make it allocate
    32 GB. The model is built on the meta device first (no memory) to count its parameters; registration
    hooks count while it is built and stop it once the count is over, so ``num_hidden_layers: 1000000``
    is refused in seconds instead of building a million layers.

    Raises:
        ModelLoadError: the parameters (or submodules) cannot fit in the weight files.
    """
    import torch
    from torch.nn.modules import module as torch_module

    stored = sum(_stored_bytes(f) for f in path.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file())
    count = 0
    modules = 0
    seen: set[int] = set()  # a tied weight (lm_head = embeddings) is registered twice but stored once
    stopped = False

    def too_large_count() -> bool:
        # NOTE: only where the allocation itself is the danger: a small model loads, and check_weights_cover
        # then names the parameters its weight files miss.
        return count * 4 > _ALLOCATION_WORTH_REFUSING and count * _MIN_BYTES_PER_PARAMETER > stored

    def on_parameter(_module: Any, _name: str, param: Any) -> None:
        nonlocal count
        if param is not None and id(param) not in seen:
            seen.add(id(param))
            count += param.numel()
            if too_large_count():
                raise _DeclaredTooLarge

    def on_module(_module: Any, _name: str, _sub: Any) -> None:
        nonlocal modules
        modules += 1
        if modules > _MODULES_WORTH_REFUSING and modules * _MIN_BYTES_PER_MODULE > stored:
            raise _DeclaredTooLarge

    cls = _model_class(transformers, config)
    hooks = [
        torch_module.register_module_parameter_registration_hook(on_parameter),
        torch_module.register_module_module_registration_hook(on_module),
    ]
    try:
        with torch.device("meta"):
            skeleton = (
                cls.from_config(config, trust_remote_code=False)
                if cls is transformers.AutoModel
                else cls(config)
            )
        # parameters replaced or shared after registration: the built model's own count is the one that loads
        count = sum(p.numel() for p in skeleton.parameters())
    except _DeclaredTooLarge:
        stopped = True
    finally:
        for hook in hooks:
            hook.remove()
    if modules > _MODULES_WORTH_REFUSING and modules * _MIN_BYTES_PER_MODULE > stored:
        raise ModelLoadError(
            f"{path}: config.json declares a model of over {_MODULES_WORTH_REFUSING:,} submodules "
            f"({_largest_sizes(config)}), but the folder's weight files hold only {stored:,} bytes; the folder is "
            "incomplete or its config is wrong: point at the folder saved with save_pretrained"
        )
    if too_large_count():
        at_least = "at least " if stopped else ""
        raise ModelLoadError(
            f"{path}: config.json declares a model of {at_least}{count:,} parameters, but the folder's weight files "
            f"hold only {stored:,} bytes; the folder is incomplete or its config is wrong (loading would allocate "
            f"{count * 4 / 1e9:.1f} GB for random weights): point at the folder saved with save_pretrained"
        )


# A file taking under 1/8 of its size on disk is sparse (holes read as zeros): compression of weights never
# comes near that, and a 16 KB folder whose model.safetensors claims 20 GB passed the size check.
_SPARSE_RATIO = 8


def _stored_bytes(file: Path) -> int:
    """The bytes a weight file really holds: its size, or its disk usage when it is a sparse file."""
    st = file.stat()
    on_disk = getattr(st, "st_blocks", 0) * 512
    return on_disk if 0 < on_disk * _SPARSE_RATIO < st.st_size else st.st_size


def _largest_sizes(config: Any) -> str:
    """The two largest integer settings of ``config`` (``num_hidden_layers=1000000, vocab_size=50``)."""
    sizes = [(v, k) for k, v in config.to_dict().items() if isinstance(v, int) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v}" for v, k in sorted(sizes, reverse=True)[:2]) or "no integer sizes"


def check_weights_cover(path: Path, loading: Mapping[str, Any]) -> None:
    """Refuse a folder whose weights leave parameters at their random initialisation.

    transformers fills a missing or mis-shaped parameter with fresh random values and only logs it; checking
    such a model would compare random weights and could pass.
    """
    missing = sorted(str(k) for k in loading.get("missing_keys") or ())
    mismatched = sorted(
        str(k[0] if isinstance(k, tuple) else k) for k in loading.get("mismatched_keys") or ()
    )
    bad = missing + mismatched
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ModelLoadError(
            f"{path}: the weight files do not cover the model: {len(bad)} parameter(s) would be random "
            f"({shown}); save the model again with save_pretrained, or point at the folder with its weights"
        )


@contextlib.contextmanager
def quiet_transformers(transformers: Any) -> Iterator[None]:
    """transformers' load report and progress bars off while loading (they go to stderr), restored after."""
    logging = transformers.utils.logging
    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
