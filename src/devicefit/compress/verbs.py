"""Compression verbs: MLModel + config -> a new compressed MLModel (through ``coremltools.optimize.coreml``).

Every verb accepts an ``MLModel`` or a path to a ``.mlpackage``, validates its config before touching the
model, and returns a new ``MLModel`` (save it with :func:`save`). ``op_names`` restricts a verb to some
weights: names of weight constants or of the ops that read them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from devicefit.compress.configs import (
    CONFIG_TYPES,
    Config,
    Fp16Config,
    JointConfig,
    PalettizeConfig,
    PruneConfig,
    QuantizeConfig,
)
from devicefit.errors import InputError, ModelLoadError, first_line

# specificationVersion -> deployment target (ML Programs start at iOS15 / spec 6).
_SPEC_TARGETS = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18"}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence coremltools' info logging and progress bars for the duration."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        logger.setLevel(level)
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def as_mlmodel(model: Any) -> Any:
    """An ``MLModel`` for a path or an ``MLModel`` (an ML Program), with a clear error otherwise."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    if isinstance(model, ct.models.MLModel):
        mlmodel = model
    else:
        path = Path(os.fspath(model))
        if not path.exists():
            raise ModelLoadError(f"model not found: {path}")
        from devicefit.sources.coreml_package import check_package

        check_package(path)  # coremltools trusts a package: Manifest.json paths, weight offsets
        try:
            with quiet():
                mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
        except Exception as e:
            raise ModelLoadError(f"could not read {path} as a Core ML model: {first_line(e)}") from e
    if mlmodel.get_spec().WhichOneof("Type") != "mlProgram":
        raise ModelLoadError("compression needs an ML Program; convert with convert_to='mlprogram'")
    return mlmodel


def target_of(mlmodel: Any) -> str:
    """The deployment target (``"iOS16"``...) an ML Program's spec version stands for."""
    version = int(mlmodel.get_spec().specificationVersion)
    return _SPEC_TARGETS.get(version, "iOS18" if version > 9 else "iOS15")


def _needs_ios18(config: Config) -> str | None:
    if isinstance(config, JointConfig):
        return "joint pruning + palettization / quantization"
    if isinstance(config, QuantizeConfig) and (config.nbits == 4 or config.granularity == "per_block"):
        return f"{config.dtype} {config.granularity} quantization"
    if isinstance(config, PalettizeConfig) and (
        config.granularity != "per_tensor" or config.per_channel_scale
    ):
        return f"palettization {config.granularity}{' with per-channel scale' if config.per_channel_scale else ''}"
    return None


def check_config(config: Any, mlmodel: Any | None = None) -> None:
    """Validate ``config`` (and that ``mlmodel``'s deployment target supports it); raises InputError."""
    if not isinstance(config, CONFIG_TYPES):
        raise InputError(
            f"expected a compression config (QuantizeConfig, PalettizeConfig, PruneConfig, JointConfig, "
            f"Fp16Config); got {type(config).__name__}"
        )
    config.validate()
    feature = _needs_ios18(config)
    if feature and mlmodel is not None and target_of(mlmodel) != "iOS18":
        raise InputError(
            f"{feature} needs an iOS18 model; this one targets {target_of(mlmodel)}: re-convert with target iOS18"
        )


def fp16(model: Any, keep_fp32: Iterable[str] = ()) -> Any:
    """Re-emit an ML Program in float16 (weights and compute), keeping ops named in ``keep_fp32`` in fp32.

    Args:
        model: ``MLModel`` or ``.mlpackage`` path (normally an fp32 model).
        keep_fp32: MIL op names (or op types) to keep computing in fp32.
    """
    from devicefit._lazy import coremltools
    from devicefit.interp.program import load_pymil

    ct = coremltools()
    mlmodel = as_mlmodel(model)
    keep = set(keep_fp32)
    prog, _, _ = load_pymil(mlmodel)
    precision = (
        ct.transform.FP16ComputePrecision(
            op_selector=lambda op: op.name not in keep and op.op_type not in keep
        )
        if keep
        else ct.precision.FLOAT16
    )
    with quiet():
        return ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, target_of(mlmodel)),
            compute_precision=precision,
            skip_model_load=True,
        )


def _opt_config(configs: Mapping[str, Any] | None, default: Any) -> Any:
    import coremltools.optimize.coreml as cto

    return cto.OptimizationConfig(
        global_config=default.to_ct() if default is not None else None,
        op_name_configs={name: c.to_ct() for name, c in (configs or {}).items()},
    )


def _run(verb: str, mlmodel: Any, config: Any, op_names: Iterable[str] | None, joint: bool = False) -> Any:
    import coremltools.optimize.coreml as cto

    check_config(config, mlmodel)
    names = list(op_names) if op_names is not None else None
    opt = _opt_config({n: config for n in names}, None) if names is not None else _opt_config(None, config)
    fn = {
        "palettize": cto.palettize_weights,
        "quantize": cto.linear_quantize_weights,
        "prune": cto.prune_weights,
    }
    try:
        with quiet():
            if joint:
                return fn[verb](mlmodel, opt, joint_compression=True)
            return fn[verb](mlmodel, opt)
    except ValueError as e:
        raise InputError(f"coremltools refused the {verb} config: {first_line(e)}") from e


def palettize(model: Any, config: PalettizeConfig, op_names: Iterable[str] | None = None) -> Any:
    """Palettize weights: ``compress.palettize(ml, PalettizeConfig(nbits=4, granularity="per_grouped_channel"))``."""
    return _run("palettize", as_mlmodel(model), config, op_names)


def quantize(model: Any, config: QuantizeConfig, op_names: Iterable[str] | None = None) -> Any:
    """Linearly quantize weights (int8 per-channel / per-tensor, int4 per-block on iOS18)."""
    return _run("quantize", as_mlmodel(model), config, op_names)


def prune(model: Any, config: PruneConfig, op_names: Iterable[str] | None = None) -> Any:
    """Magnitude-prune weights (unstructured ``sparsity`` or ``n:m``)."""
    return _run("prune", as_mlmodel(model), config, op_names)


def joint(model: Any, config: JointConfig, op_names: Iterable[str] | None = None) -> Any:
    """Prune, then palettize or quantize the remaining weights into one sparse compressed op (iOS18)."""
    mlmodel = as_mlmodel(model)
    check_config(config, mlmodel)
    pruned = _run("prune", mlmodel, config.prune, op_names)
    verb = "palettize" if isinstance(config.then, PalettizeConfig) else "quantize"
    return _run(verb, pruned, config.then, op_names, joint=True)


def compress(model: Any, config: Config, op_names: Iterable[str] | None = None) -> Any:
    """Apply any one config (dispatch on its type)."""
    check_config(config)
    if isinstance(config, Fp16Config):
        return fp16(model)
    verbs: dict[type, Any] = {
        PalettizeConfig: palettize,
        QuantizeConfig: quantize,
        PruneConfig: prune,
        JointConfig: joint,
    }
    return verbs[type(config)](model, config, op_names)


def apply_plan(model: Any, plan: Mapping[str, Config], default: Config | None = None) -> Any:
    """Apply per-weight configs (weight or op name -> config), so one model can mix precisions.

    Weights not in ``plan`` get ``default`` (None: left as they are). ``Fp16Config`` entries mean "leave
    this weight uncompressed" (the model keeps its own float precision). Pruning runs first, then
    palettization, then quantization, each pass restricted to its own weights.
    """
    mlmodel = as_mlmodel(model)
    for name, config in plan.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"plan keys must be weight or op names; got {name!r}")
        check_config(config, mlmodel)
    if default is not None:
        check_config(default, mlmodel)
        if not isinstance(default, PalettizeConfig | QuantizeConfig | PruneConfig):
            raise InputError("a plan default must be a PalettizeConfig, QuantizeConfig or PruneConfig")
    import coremltools.optimize.coreml as cto
    import numpy

    def stage(kind: type, pick: Any) -> tuple[dict[str, Any], Any]:
        named = {n: pick(c) for n, c in plan.items() if pick(c) is not None and isinstance(pick(c), kind)}
        others = {n: None for n in plan if n not in named}
        return {**others, **named}, default if isinstance(default, kind) else None

    stages = [
        ("prune", PruneConfig, lambda c: c.prune if isinstance(c, JointConfig) else c, False),
        ("palettize", PalettizeConfig, lambda c: c.then if isinstance(c, JointConfig) else c, True),
        ("quantize", QuantizeConfig, lambda c: c.then if isinstance(c, JointConfig) else c, True),
    ]
    fn = {
        "palettize": cto.palettize_weights,
        "quantize": cto.linear_quantize_weights,
        "prune": cto.prune_weights,
    }
    has_joint = any(isinstance(c, JointConfig) for c in plan.values())
    for verb, kind, pick, joint_ok in stages:
        configs, stage_default = stage(kind, pick)
        if not any(v is not None for v in configs.values()) and stage_default is None:
            continue
        opt = cto.OptimizationConfig(
            global_config=stage_default.to_ct() if stage_default is not None else None,
            op_name_configs={n: (c.to_ct() if c is not None else None) for n, c in configs.items()},
        )
        try:
            # NOTE: errstate: a block of zeros (an embedding's padding row) gets scale 0 in coremltools' linear
            # quantization, whose 0 / 0 warns "invalid value encountered in divide / cast"; the block is stored
            # with scale 0 and dequantizes to exact zeros (tests/compress/test_verbs.py)
            with quiet(), numpy.errstate(invalid="ignore", divide="ignore"):
                if joint_ok and has_joint:
                    mlmodel = fn[verb](mlmodel, opt, joint_compression=True)
                else:
                    mlmodel = fn[verb](mlmodel, opt)
        except ValueError as e:
            raise InputError(f"coremltools refused the {verb} plan: {first_line(e)}") from e
    return mlmodel


def save(mlmodel: Any, path: str | os.PathLike[str], force: bool = False) -> Path:
    """Save ``mlmodel`` as a ``.mlpackage`` atomically (never a partial package); refuses to overwrite.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        InputError: ``path`` does not end in ``.mlpackage``.
    """
    from devicefit.io import save_package

    with quiet():
        return save_package(mlmodel, path, force=force)
