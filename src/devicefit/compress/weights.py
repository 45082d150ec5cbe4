"""Which weights a model has, what each costs in bytes, and a plan as coremltools YAML."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from devicefit.analyze.size import Weight
from devicefit.compress.configs import Config, Fp16Config, JointConfig, PalettizeConfig, QuantizeConfig
from devicefit.convert.provenance import Origin
from devicefit.errors import InputError


def _ops(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _ops(inner)


def _main(mlmodel: Any) -> Any:
    from devicefit.interp.program import load_pymil

    prog, _, _ = load_pymil(mlmodel)
    return prog.functions.get("main") or next(iter(prog.functions.values()))


def find_weights(mlmodel: Any, min_elements: int = 256) -> list[Weight]:
    """Compressible weights: float ``const`` tensors with at least ``min_elements`` elements that compute
    ops read as named inputs, in program order (from :func:`devicefit.analyze.size.find_weights`)."""
    from devicefit import interp
    from devicefit.analyze.size import find_weights as all_weights

    program = interp.load(mlmodel)
    return [
        w for w in all_weights(program) if w.stored_as == "const" and w.numel >= min_elements and w.consumers
    ]


# Suffixes coremltools' fp16 pass adds to the names of the values it casts: the fp16 base of an fp32 package
# names ``conv1_weight`` ``conv1_weight_to_fp16`` and ``var_19`` ``var_19_cast_fp16``.
_FP16_SUFFIXES = ("_to_fp16", "_cast_fp16")


def weight_origins(original: Any, base: Any, weights: list[Weight]) -> dict[str, Origin]:
    """Weight name -> the PyTorch module it came from, from the provenance ``original``'s metadata holds.

    ``base`` is the package the weights were found in (``original`` itself, or its fp16 version, whose value
    names carry the fp16 pass's suffixes). A weight is looked up by its reading op's outputs, the op, then
    its own name, each also without those suffixes; weights with no known origin are left out.
    """
    from devicefit import interp
    from devicefit.convert.provenance import load_from_package

    provenance = load_from_package(original) or load_from_package(base)
    if provenance is None:
        return {}
    outputs = {s.name: s.outputs for s in interp.load(base).plan.block.steps}
    # coremltools scopes a weight constant by its module but without the source line its op has
    located: dict[tuple[str | None, str | None], Origin] = {}
    for _, origin in provenance.items():
        if origin.location:
            located.setdefault((origin.module_path, origin.module_type), origin)
    found: dict[str, Origin] = {}
    for w in weights:
        names = [*outputs.get(w.op, []), w.op, w.name]
        names += [n[: -len(sfx)] for n in names for sfx in _FP16_SUFFIXES if n.endswith(sfx)]
        origins = [o for o in (provenance.get(n) for n in names) if o is not None]
        if not origins:
            continue
        best = next((o for o in origins if o.location), origins[0])
        best = best if best.location else located.get((best.module_path, best.module_type), best)
        own_names = [w.name] + [w.name[: -len(sfx)] for sfx in _FP16_SUFFIXES if w.name.endswith(sfx)]
        own = next((o for o in map(provenance.get, own_names) if o is not None), None)
        found[w.name] = _folded(best, w.op_type, own)
    return found


# Ops whose weights coremltools folds a following normalization into (fuse_conv_batchnorm / _bias / _scale):
# the fused weight is then scoped by the norm module, which alone would name the wrong layer.
_FOLDS_INTO = ("conv", "conv_transpose", "linear")


def _folded(origin: Origin, op_type: str, own: Origin | None = None) -> Origin:
    """``origin``, saying so when a normalization module's parameters were folded into a conv / linear
    weight (the weight a user would look for is that conv's, with the norm folded in).

    ``own`` is the weight constant's own origin: the fused weight keeps the norm's scope while its op is
    named as the conv (:func:`devicefit.convert.provenance.collect`), so the label names the conv and the norm.
    """
    from dataclasses import replace

    def is_norm(o: Origin | None) -> bool:
        return o is not None and bool(o.module_type) and "Norm" in str(o.module_type)

    if op_type not in _FOLDS_INTO:
        return origin
    if is_norm(origin):
        return replace(origin, module_type=f"{origin.module_type}, folded into the {op_type} before it")
    if own is not None and is_norm(own) and origin.module_type:
        norm = f"{own.module_path} ({own.module_type})" if own.module_path else str(own.module_type)
        return replace(origin, module_type=f"{origin.module_type}, with {norm} folded in")
    return origin


def _const_bytes(op: Any) -> int:
    from devicefit.analyze.size import const_bytes  # the one home of constant byte counting

    return const_bytes(op)


def _producer_bytes(var: Any) -> int:
    op = var.op
    if op is None:
        return 0
    if op.op_type == "const":
        return _const_bytes(op)
    if op.op_type.startswith("constexpr_"):
        total = 0
        for v in op.inputs.values():
            for item in v if isinstance(v, list | tuple) else [v]:
                total += _producer_bytes(item)
        return total
    return 0


def input_bytes(mlmodel: Any) -> dict[tuple[str, str], int]:
    """(op name, input name) -> bytes stored for that constant input (through any constexpr chain)."""
    out: dict[tuple[str, str], int] = {}
    for op in _ops(_main(mlmodel)):
        if op.op_type == "const" or op.op_type.startswith("constexpr_"):
            continue
        for param, var in op.inputs.items():
            if isinstance(var, list | tuple):
                continue
            size = _producer_bytes(var)
            if size:
                out[(op.name, param)] = size
    return out


def stored_bytes(mlmodel: Any) -> int:
    """Bytes of every constant of the program's main function, at its stored bit width."""
    return sum(_const_bytes(op) for op in _ops(_main(mlmodel)) if op.op_type == "const")


def _family(config: Config) -> str | None:
    inner = config.then if isinstance(config, JointConfig) else config
    if isinstance(inner, PalettizeConfig):
        return "OpPalettizerConfig"
    if isinstance(inner, QuantizeConfig):
        return "OpLinearQuantizerConfig"
    return None


def plan_yaml(plan: Mapping[str, Config]) -> str:
    """The plan as YAML that ``coremltools.optimize.coreml.OptimizationConfig.from_yaml`` reads.

    Weights kept uncompressed (``Fp16Config``) map to ``null``. Re-apply with
    ``palettize_weights(model, OptimizationConfig.from_yaml(path))`` (or ``linear_quantize_weights``).

    Raises:
        InputError: the plan mixes palettization and quantization (coremltools applies one family per call).
    """
    import yaml

    families = {f for f in (_family(c) for c in plan.values()) if f}
    if len(families) > 1:
        raise InputError("a plan mixing palettization and quantization needs one YAML per family")
    if any(isinstance(c, JointConfig) for c in plan.values()):
        raise InputError(
            "joint pruning plans are applied in two steps; write the prune and compress YAML apart"
        )
    family = families.pop() if families else "OpPalettizerConfig"
    names: dict[str, Any] = {}
    for name, config in plan.items():
        names[name] = None if isinstance(config, Fp16Config) else config.yaml_dict()  # type: ignore[union-attr]
    doc = {"config_type": family, "global_config": None, "op_name_configs": names}
    return yaml.safe_dump(doc, sort_keys=False)
