"""Compressed models end to end: coremltools.optimize.coreml passes, then the interpreter.

For each compression variant the interpreter's output on the compressed model must equal its output on the
same model with the weights decompressed by coremltools (``decompress_weights``, which replaces every
``constexpr_*`` op by a ``const`` holding the op's own ``materialized_val_inference``), and stay close to the
uncompressed original. The compressed program must contain the expected constexpr ops, so no case can pass
by compressing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from devicefit import interp
from tests.helpers import convert, cosine, rel_error


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(64, 16)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32, 16)

    def forward(self, x):
        y = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(y.mean((2, 3)))


MODELS = {"mlp": (MLP, (4, 32)), "cnn": (CNN, (1, 8, 8, 8))}
_converted: dict[tuple[str, str, str], tuple] = {}


def model_at(name: str, target: str, precision: str):
    """(MLModel, input array) for a zoo model converted at ``target``; cached across the module's tests."""
    key = (name, target, precision)
    if key not in _converted:
        cls, shape = MODELS[name]
        torch.manual_seed(0)
        module = cls().eval()
        x = torch.randn(*shape)
        _converted[key] = (convert(module, x, target=target, precision=precision), x.numpy())
    return _converted[key]


def cfg(op_config):
    from coremltools.optimize.coreml import OptimizationConfig

    return OptimizationConfig(global_config=op_config)


# weight_threshold is low so that every weight of the small models gets compressed.
def int8_per_channel(ml):
    import coremltools.optimize.coreml as cto

    conf = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=16
    )
    return cto.linear_quantize_weights(ml, cfg(conf))


def int4_per_block(ml):
    import coremltools.optimize.coreml as cto

    conf = cto.OpLinearQuantizerConfig(
        mode="linear", dtype="int4", granularity="per_block", block_size=8, weight_threshold=16
    )
    return cto.linear_quantize_weights(ml, cfg(conf))


def palettize(**kwargs):
    def compress(ml):
        import coremltools.optimize.coreml as cto

        return cto.palettize_weights(ml, cfg(cto.OpPalettizerConfig(weight_threshold=16, **kwargs)))

    return compress


def prune_50(ml):
    import coremltools.optimize.coreml as cto

    return cto.prune_weights(ml, cfg(cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=16)))


def prune_then_palettize(ml):
    import coremltools.optimize.coreml as cto

    conf = cto.OpPalettizerConfig(nbits=4, mode="kmeans", weight_threshold=16)
    return cto.palettize_weights(prune_50(ml), cfg(conf), joint_compression=True)


def prune_then_quantize(ml):
    import coremltools.optimize.coreml as cto

    conf = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=16)
    return cto.linear_quantize_weights(prune_50(ml), cfg(conf), joint_compression=True)


def palettize_then_quantize_lut(ml):
    import coremltools.optimize.coreml as cto

    # quantizing a LUT jointly needs per-tensor quantization (coremltools refuses per-channel here)
    conf = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_tensor", weight_threshold=16
    )
    return cto.linear_quantize_weights(
        palettize(nbits=4, mode="kmeans")(ml), cfg(conf), joint_compression=True
    )


@dataclass(frozen=True)
class Variant:
    compress: Callable
    targets: tuple[str, ...]
    ops: dict[str, str]  # target -> a constexpr op that must appear
    also: tuple[str, ...] = ()  # further constexpr ops that must appear (any target)
    min_cosine: float = 0.99  # vs. the uncompressed model: the tolerance lives with the variant


VARIANTS = {
    "int8_per_channel": Variant(
        int8_per_channel,
        ("iOS16", "iOS17", "iOS18"),
        {
            "iOS16": "constexpr_affine_dequantize",
            "iOS17": "constexpr_affine_dequantize",
            "iOS18": "constexpr_blockwise_shift_scale",
        },
        min_cosine=0.9999,
    ),
    "int4_per_block": Variant(int4_per_block, ("iOS18",), {"iOS18": "constexpr_blockwise_shift_scale"}),
    "palettize_4bit_kmeans": Variant(
        palettize(nbits=4, mode="kmeans"),
        ("iOS16", "iOS18"),
        {"iOS16": "constexpr_lut_to_dense", "iOS18": "constexpr_lut_to_dense"},
    ),
    "palettize_4bit_grouped": Variant(
        palettize(nbits=4, mode="kmeans", granularity="per_grouped_channel", group_size=4),
        ("iOS18",),
        {"iOS18": "constexpr_lut_to_dense"},
    ),
    "palettize_per_channel_scale": Variant(
        palettize(
            nbits=4,
            mode="kmeans",
            granularity="per_grouped_channel",
            group_size=8,
            enable_per_channel_scale=True,
        ),
        ("iOS18",),
        {"iOS18": "constexpr_lut_to_dense"},
        also=("constexpr_blockwise_shift_scale",),
    ),
    "palettize_vector": Variant(
        palettize(nbits=4, mode="kmeans", cluster_dim=2),
        ("iOS18",),
        {"iOS18": "constexpr_lut_to_dense"},
        min_cosine=0.9,  # 16 centroids for pairs of weights: coarser than scalar 4-bit
    ),
    "palettize_2bit_uniform": Variant(
        palettize(nbits=2, mode="uniform"),
        ("iOS16",),
        {"iOS16": "constexpr_lut_to_dense"},
        min_cosine=0.8,
    ),
    "prune_50": Variant(
        prune_50,
        ("iOS16", "iOS18"),
        {"iOS16": "constexpr_sparse_to_dense", "iOS18": "constexpr_sparse_to_dense"},
        min_cosine=0.85,
    ),
    "prune_palettize_joint": Variant(
        prune_then_palettize,
        ("iOS18",),
        {"iOS18": "constexpr_lut_to_sparse"},
        also=("constexpr_sparse_to_dense",),
        min_cosine=0.85,
    ),
    "prune_quantize_joint": Variant(
        prune_then_quantize,
        ("iOS18",),
        {"iOS18": "constexpr_sparse_blockwise_shift_scale"},
        also=("constexpr_sparse_to_dense",),
        min_cosine=0.85,
    ),
    "palettize_quantized_lut": Variant(
        palettize_then_quantize_lut,
        ("iOS18",),
        {"iOS18": "constexpr_lut_to_dense"},
        also=("constexpr_blockwise_shift_scale",),
    ),
}

CASES = [
    pytest.param(variant, model, target, precision, id=f"{variant}-{model}-{target}-{precision}")
    for variant, v in VARIANTS.items()
    for model in MODELS
    for target in v.targets
    for precision in ("fp32", "fp16")
    # fp16 weights: one model per variant at the newest target is enough to cover fp16-typed constexpr outputs
    if precision == "fp32" or (model == "mlp" and target == v.targets[-1])
]


def constexpr_counts(prog) -> dict[str, int]:
    return {k: n for k, n in prog.op_counts.items() if k.startswith("constexpr_")}


@pytest.mark.parametrize(("variant", "model", "target", "precision"), CASES)
def test_compressed_equals_decompressed(variant, model, target, precision):
    from coremltools.optimize.coreml import decompress_weights

    spec = VARIANTS[variant]
    ml, x = model_at(model, target, precision)
    compressed = spec.compress(ml)
    prog = interp.load(compressed)

    found = constexpr_counts(prog)
    for op in (spec.ops[target], *spec.also):
        assert found.get(op, 0) >= 1, f"{variant} at {target}: expected {op}, program has {found}"
    # every weight-holding layer got compressed (the CNN's first conv may be skipped by per-block int4)
    assert sum(found.values()) >= 2
    # constexprs are compile-time constants: all of them fold away at prepare time
    assert not [s for s in prog.plan.block.steps if s.op_type.startswith("constexpr_")]

    reference = interp.load(decompress_weights(compressed))
    assert not constexpr_counts(reference), "decompress_weights left constexpr ops"

    feeds = {prog.inputs[0].name: x}
    name = prog.outputs[0].name
    out = prog.run(feeds, strict=True)[name]
    expected = reference.run(feeds, strict=True)[name]
    assert rel_error(out, expected) <= 1e-6

    if precision == "fp16":
        out16 = prog.run(feeds, precision="fp16")[name]
        assert rel_error(out16, reference.run(feeds, precision="fp16")[name]) <= 1e-6

    original = interp.load(ml).run(feeds)[name]
    assert cosine(out, original) >= spec.min_cosine
    # compression changed the weights: equal outputs would mean it did nothing
    assert rel_error(out, original) > 0


def test_compressed_weights_equal_decompressed_consts():
    """Weight by weight: each folded constexpr output equals the const coremltools materialises for it."""
    from coremltools.optimize.coreml import decompress_weights

    ml, _ = model_at("cnn", "iOS18", "fp32")
    compressed = prune_then_palettize(ml)
    prog = interp.load(compressed)
    reference = interp.load(decompress_weights(compressed))
    dense_outputs = [
        op.outputs[0].name
        for op in prog.pymil_function.operations
        if op.op_type == "constexpr_sparse_to_dense"
    ]
    assert len(dense_outputs) == 3
    for name in dense_outputs:
        mine = prog.plan.constants[name]
        theirs = reference.plan.constants[name]
        assert mine.shape == theirs.shape
        assert torch.equal(mine, theirs), name
        assert 0.4 <= float((mine == 0).float().mean()) <= 0.6  # 50% pruned


def test_vector_palettization_uses_vector_luts():
    ml, _ = model_at("mlp", "iOS18", "fp32")
    prog = interp.load(VARIANTS["palettize_vector"].compress(ml))
    luts = [op for op in prog.pymil_function.operations if op.op_type == "constexpr_lut_to_dense"]
    assert luts and all(op.lut.shape[-1] == 2 and op.vector_axis is not None for op in luts)
    for op in luts:
        # each index expands to 2 weights along vector_axis
        out = prog.plan.constants[op.outputs[0].name]
        assert out.shape[op.vector_axis.val] == 2 * op.indices.shape[op.vector_axis.val]


# ---------------------------------------------------------------- programs built with the MIL builder


def test_activation_quantize_dequantize_program(ct):
    """quantize / dequantize pairs as linear_quantize_activations inserts them (it needs macOS to calibrate)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.optimize import _utils

    scale_c = np.array([0.1, 0.02, 0.03], np.float32)
    zp_c = np.array([128, 120, 130], np.uint8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        q = mb.quantize(input=x, scale=np.float32(0.05), zero_point=np.int8(3), output_dtype="int8", name="q")
        d = mb.dequantize(input=q, scale=np.float32(0.05), zero_point=np.int8(3), name="d")
        q2 = mb.quantize(input=x, scale=scale_c, zero_point=zp_c, axis=1, output_dtype="uint8", name="q2")
        d2 = mb.dequantize(input=q2, scale=scale_c, zero_point=zp_c, axis=1, name="d2")
        return mb.add(x=d, y=d2, name="out")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
    )
    program = interp.load(model)
    assert program.op_counts["quantize"] == 2 and program.op_counts["dequantize"] == 2
    x = (np.random.default_rng(0).standard_normal((2, 3, 4)) * 3).astype(np.float32)
    out = program.run({"x": x}, intermediates=True, strict=True)

    q = _utils.quantize_by_scale_and_zp(
        x, np.float32(0.05).reshape(1, 1, 1), np.int8(3).reshape(1, 1, 1), "int8"
    )
    s2, z2 = scale_c.reshape(1, 3, 1), zp_c.reshape(1, 3, 1)
    q2 = _utils.quantize_by_scale_and_zp(x, s2, z2, "uint8")
    assert out["q"].dtype == np.int8 and out["q2"].dtype == np.uint8
    np.testing.assert_array_equal(out["q"], q)
    np.testing.assert_array_equal(out["q2"], q2)
    expected = (q.astype(np.float32) - 3) * np.float32(0.05) + (q2.astype(np.float32) - z2) * s2
    assert rel_error(out["out"], expected) <= 1e-6
    # saturation happened: the int8 branch clips |x| > 6.25 / the uint8 branch clips too
    assert (q == 127).any() or (q == -128).any() or (q2 == 255).any() or (q2 == 0).any()
    assert rel_error(out["out"], 2 * x) < 0.5


def test_constexpr_cast_program(ct):
    from coremltools.converters.mil import Builder as mb

    weight = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(4, 6))], opset_version=ct.target.iOS16)
    def prog(x):
        w = mb.constexpr_cast(source_val=weight, output_dtype="fp32", name="w")
        return mb.add(x=x, y=w, name="out")

    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT32,
    )
    program = interp.load(model)
    assert program.op_counts.get("constexpr_cast") == 1
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    out = program.run({"x": x}, strict=True)["out"]
    np.testing.assert_array_equal(out, x + weight.astype(np.float32))
