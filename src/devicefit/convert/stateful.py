"""Causal LM -> one iOS18 multi-function package: ``prefill`` and ``decode`` sharing weights, KV cache as state.

The model is wrapped by :class:`~devicefit.convert.lm_wrapper.StatefulCausalLM` (explicit static cache in
registered buffers), traced once, converted twice with ``ct.StateType`` states (prompt-length inputs for
``prefill``, one token for ``decode``) and merged with coremltools' ``save_multifunction``, which stores each
distinct weight once (see :mod:`devicefit.convert.merge`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devicefit.errors import DevicefitError, InputError, ModelLoadError, OutputExistsError, first_line

__all__ = ["LMConversion", "convert_causal_lm", "is_causal_lm_folder", "load_causal_lm"]

STATE_NAMES = (
    "k_cache",
    "v_cache",
)  # every package's; a hybrid (LFM2) adds conv_state (LMShape.cache_shapes)
INPUT_NAMES = ("input_ids", "causal_mask")
OUTPUT_NAME = "logits"


@dataclass
class LMConversion:
    """What :func:`convert_causal_lm` wrote.

    Attributes:
        output: the multi-function ``.mlpackage`` (functions ``prefill`` and ``decode``; default ``decode``).
        family: the transformers ``model_type``.
        max_context: cache length in tokens (prompt + generated).
        precision: compute precision of the package (``"fp16"`` or ``"fp32"``); the cache is fp16 either way
            (Core ML states are fp16 only).
        prefill_lengths: the enumerated prompt lengths of ``prefill``, or None for any length 1..max_context.
        cache_shape: shape of the ``k_cache`` state (layers, 1, kv heads, context, width).
        state_shapes: each state's shape; ``k_cache`` and ``v_cache`` differ for latent attention (the latent
            and the rotated shared key, one "head": convert/lm_mla.py); LFM2 adds ``conv_state``
            (convert/lm_hybrid.py).
        weight_bytes: bytes of the merged weight file (one copy shared by both functions).
        notes: caveats the user should know (e.g. a sliding window ignored below its size).
        seconds: wall time.
    """

    output: Path
    family: str
    max_context: int
    precision: str
    prefill_lengths: list[int] | None
    cache_shape: tuple[int, ...]
    weight_bytes: int
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    state_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = asdict(self)
        d["output"] = str(self.output)
        d["cache_shape"] = list(self.cache_shape)
        d["state_shapes"] = {name: list(shape) for name, shape in self.state_shapes.items()}
        return d


def is_causal_lm_folder(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a Hugging Face model folder whose ``config.json`` names a ``*ForCausalLM`` class."""
    import json

    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        archs = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(str(a).endswith("ForCausalLM") or str(a).endswith("LMHeadModel") for a in archs)


def load_causal_lm(source: Any) -> Any:
    """A transformers causal LM in eval mode, from a local folder, a model object, or a zero-argument factory.

    Raises:
        ModelLoadError: the folder cannot be loaded (nothing is downloaded: ``local_files_only``).
        InputError: the source is none of the above.
    """
    import torch

    model: Any
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a Hugging Face model folder (no config.json)")
        # NOTE: the same guards as every Hugging Face folder (sources.coreml_hf): a crafted config.json is refused
        # before transformers allocates it, and weights missing from the files are an error, not random values.
        from devicefit.sources.coreml_hf import check_declared_size, check_weights_cover, quiet_transformers

        try:
            import transformers

            with quiet_transformers(transformers):
                config = transformers.AutoConfig.from_pretrained(
                    str(path), local_files_only=True, trust_remote_code=False
                )
                check_declared_size(path, transformers, config)
                loaded: Any = transformers.AutoModelForCausalLM.from_pretrained(
                    str(path),
                    config=config,
                    local_files_only=True,
                    dtype=torch.float32,
                    output_loading_info=True,
                )
                model, loading = loaded
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"could not load {path} as a causal LM: {first_line(e)}") from e
        check_weights_cover(path, loading)
    elif isinstance(source, torch.nn.Module):
        model = source
    elif callable(source):
        model = source()
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    else:
        raise InputError(
            f"expected a model folder, a causal LM module or a factory, got {type(source).__name__}"
        )
    return model.float().eval()


def _ct_inputs(ct: Any, np: Any, function: str, max_context: int, lengths: Sequence[int] | None) -> list[Any]:
    if function == "decode":
        ids: Any = ct.Shape((1, 1))
        mask: Any = ct.Shape((1, 1, 1, ct.RangeDim(1, max_context, default=1)))
    elif lengths:
        # NOTE: prefill starts an empty cache, so the mask's key length equals the prompt length.
        ids = ct.EnumeratedShapes([(1, n) for n in lengths], default=(1, lengths[0]))
        mask = ct.EnumeratedShapes([(1, 1, n, n) for n in lengths], default=(1, 1, lengths[0], lengths[0]))
    else:
        seq = ct.RangeDim(1, max_context, default=1)
        end = ct.RangeDim(1, max_context, default=1)
        ids = ct.Shape((1, seq))
        mask = ct.Shape((1, 1, seq, end))
    return [
        ct.TensorType(INPUT_NAMES[0], shape=ids, dtype=np.int32),
        ct.TensorType(INPUT_NAMES[1], shape=mask, dtype=np.float32),
    ]


def _check_args(max_context: int, precision: str, lengths: Sequence[int] | None) -> list[int] | None:
    if not isinstance(max_context, int) or max_context < 2:
        raise InputError(f"--max-context must be an integer >= 2, got {max_context!r}")
    if precision not in ("fp16", "fp32"):
        raise InputError(f"precision must be fp16 or fp32, got {precision!r}")
    if lengths is None:
        return None
    out = sorted({int(n) for n in lengths})
    if not out or out[0] < 1 or out[-1] > max_context:
        raise InputError(
            f"prefill lengths must lie in 1..{max_context} (the --max-context), got {list(lengths)}"
        )
    return out


_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def check_context(model: Any, max_context: int) -> None:
    """Refuse a KV-cache length beyond the positions the model's config declares (before any cache exists:
    ``--max-context 1000000000`` allocated until it failed, an internal error).

    Raises:
        InputError: naming the model's limit and what to pass.
    """
    from devicefit.convert.lm_classic import check_positions
    from devicefit.convert.lm_families import CLASSIC_FAMILIES

    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) in CLASSIC_FAMILIES:
        check_positions(model, max_context)  # the learned table itself (GPT-2's n_positions, OPT, GPT-J)
    for key in _POSITION_KEYS:
        positions = getattr(config, key, None)
        if isinstance(positions, int) and positions > 0:
            if max_context > positions:
                raise InputError(
                    f"--max-context {max_context} exceeds the {positions} positions the model's config declares "
                    f"({key}); use --max-context <= {positions}"
                )
            return


def convert_causal_lm(
    source: Any,
    output: str | os.PathLike[str],
    max_context: int = 256,
    precision: str = "fp16",
    prefill_lengths: Sequence[int] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> LMConversion:
    """Convert a causal LM into a stateful ``prefill`` + ``decode`` multi-function package (iOS18).

    Args:
        source: a local Hugging Face folder, a transformers ``*ForCausalLM`` module, or a factory returning one.
        output: the ``.mlpackage`` to write (atomically).
        max_context: KV-cache length in tokens; sizes both states.
        precision: ``"fp16"`` (what ships) or ``"fp32"`` compute precision.
        prefill_lengths: enumerated prompt lengths for ``prefill`` (pad prompts up to one); None = any length
            1..max_context (RangeDim).
        force: overwrite ``output``.
        progress: called with a short message before each stage.

    Raises:
        InputError: bad arguments or an architecture outside the covered families (the message says why).
        ModelLoadError: the source cannot be loaded.
        OutputExistsError: ``output`` exists and ``force`` is False.
    """
    import numpy as np
    import torch

    from devicefit._lazy import coremltools
    from devicefit.convert import provenance
    from devicefit.convert.frontends import _library_logs_quiet, _quiet_coremltools
    from devicefit.convert.lm_wrapper import causal_mask, stateful_wrapper
    from devicefit.convert.merge import merge
    from devicefit.convert.rescue import rescue_translations

    lengths = _check_args(max_context, precision, prefill_lengths)
    out = Path(output)
    if out.suffix != ".mlpackage":
        raise InputError(f"output {out} must end with .mlpackage")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it or choose another path")
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    ct = coremltools()
    model = load_causal_lm(source)
    check_context(model, max_context)
    wrapper = stateful_wrapper(model, max_context).eval()
    shape = wrapper.shape
    if shape.conv is not None and lengths is not None:
        raise InputError(
            f"{shape.family} keeps a convolution state that padding to an enumerated prefill length would fill "
            "with padding (it has no positions to mask); convert without prefill lengths (any prompt length)"
        )
    notes = []
    if shape.verified is not None:
        notes.append(
            f"{shape.family} is not one of the families the wrapper was written for: its modules follow LLaMA's "
            f"{shape.layout} layout and the wrapper reproduced its logits on a probe sequence (largest difference "
            f"{shape.verified:.1g} of the largest logit)"
        )
    if shape.latent is not None:
        notes.append(latent_cache_note(model, shape))
    if shape.conv is not None:
        count, channels, steps = shape.conv
        notes.append(
            f"{count} short-convolution layers keep their last {steps} steps ({channels} channels each) in the "
            "conv_state state beside the attention layers' KV cache; prompts are never padded"
        )
    if shape.sliding_window is not None and shape.sliding_window < max_context:
        notes.append(f"sliding-window attention (window {shape.sliding_window}) applied within the cache")
    say("tracing the stateful wrapper")
    example = (torch.zeros(1, 2, dtype=torch.int32), causal_mask(2, 2))
    with torch.no_grad(), _library_logs_quiet():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    wrapper.reset_cache()
    shapes = shape.cache_shapes(max_context)
    states = [
        ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=n)
        for n, shape in shapes.items()
    ]
    compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    origins: dict[str, Any] = {}  # both functions come from one trace: a value name has one origin
    with tempfile.TemporaryDirectory(prefix="devicefit-lm-") as tmp:
        parts = []
        for function in ("prefill", "decode"):
            say(f"converting {function}")
            try:
                # NOTE: quiet: every layer writes the two cache buffers, and coremltools warns "Torch var
                # k_cache is added again" for each write (the expected pattern for states)
                with _quiet_coremltools(), rescue_translations():
                    mlmodel = ct.convert(
                        traced,
                        inputs=_ct_inputs(ct, np, function, max_context, lengths),
                        outputs=[ct.TensorType(OUTPUT_NAME, dtype=np.float32)],
                        states=states,
                        minimum_deployment_target=ct.target.iOS18,
                        compute_precision=compute,
                        skip_model_load=True,
                    )
            except Exception as e:  # coremltools raises bare exceptions; give the user one line
                raise DevicefitError(f"converting the {function} function failed: {first_line(e)}") from e
            # which wrapper call each op came from (module name and type, as the trace scoped it): the
            # generation check's localisation maps them onto the model's modules (check/lm_localize.py)
            origins.update(provenance.collect(mlmodel, traced).items())
            part = Path(tmp) / f"{function}.mlpackage"
            mlmodel.save(str(part))
            parts.append(part)
        say("merging prefill + decode with shared weights")
        merged = merge(parts, out, names=["prefill", "decode"], default="decode", force=force)
    store_provenance(out, provenance.Provenance(origins))
    return LMConversion(
        output=out,
        family=shape.family,
        max_context=max_context,
        precision=precision,
        prefill_lengths=lengths,
        cache_shape=shapes["k_cache"],
        weight_bytes=merged.merged_weight_bytes,
        notes=notes,
        seconds=time.perf_counter() - start,
        state_shapes=dict(shapes),
    )


def latent_cache_note(model: Any, shape: Any) -> str:
    """What a latent-attention (MLA) cache keeps per token, against expanded per-head keys and values."""
    from devicefit.convert.lm_mla import expanded_bytes_per_token

    lora, rope = shape.latent
    latent = shape.cache_bytes_per_layer(1)
    expanded = expanded_bytes_per_token(model)
    return (
        f"latent attention: the cache keeps each token's compressed latent ({lora} values, k_cache) and rotated "
        f"shared key ({rope}, v_cache): {latent} B per token and layer in fp16, against {expanded} B for every "
        f"head's key and value ({expanded / latent:.1f}x)"
    )


def store_provenance(package: Path, found: Any) -> None:
    """Write ``found`` (a :class:`~devicefit.convert.provenance.Provenance`) into a package devicefit just wrote.

    ``save_multifunction`` (the merge) keeps no user-defined metadata, so it is added to the merged model's spec
    afterwards, as :func:`devicefit.convert.provenance.attach` would have.
    """
    import json

    from devicefit.convert.provenance import METADATA_KEY
    from devicefit.sources.coreml_package import _manifest_model_path, read_spec

    if not len(found):
        return
    spec, _, _ = read_spec(package)
    spec.description.metadata.userDefined[METADATA_KEY] = json.dumps(found.to_json(), separators=(",", ":"))
    model_file = package / "Data" / _manifest_model_path(package)
    model_file.write_bytes(spec.SerializeToString())
