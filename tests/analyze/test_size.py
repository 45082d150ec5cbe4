"""Weight sizes at each precision, by layer, and on disk."""

from __future__ import annotations

import torch

from devicefit.analyze.size import PRECISIONS, analyze_size, package_bytes, tensor_bytes


def test_tensor_bytes_by_hand():
    assert tensor_bytes(12, (3, 4), "fp32") == 48
    assert tensor_bytes(12, (3, 4), "fp16") == 24
    assert tensor_bytes(12, (3, 4), "int8") == 12 + 2 * 3  # + an fp16 scale per output channel
    assert tensor_bytes(12, (3, 4), "4bit") == 6 + 2 * 16  # indices + 16-entry fp16 LUT
    assert tensor_bytes(10, (10,), "6bit") == 8 + 2 * 64  # ceil(60 / 8) = 8


class _Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(3, 2, bias=False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_weights_and_layers_of_a_converted_model(tmp_path):
    from devicefit import interp
    from tests.helpers import convert

    ml = convert(_Two(), torch.ones(1, 4), precision="fp16", target="iOS17")
    path = tmp_path / "two.mlpackage"
    ml.save(str(path))
    rep = analyze_size(interp.load(path), path)
    # a.weight 12 + a.bias 3 + b.weight 6 (b's zero bias is a constant too, 2 elements)
    assert rep.parameters in (21, 23)
    assert {w.dtype for w in rep.weights} == {"fp16"}
    assert rep.weight_bytes == 2 * rep.parameters
    assert rep.bytes_at["fp32"] == 4 * rep.parameters
    assert set(rep.bytes_at) == set(PRECISIONS)
    assert rep.bytes_at["4bit"] < rep.bytes_at["int8"] or rep.parameters < 100  # LUT overhead on tiny tensors
    assert [layer.op_type for layer in rep.layers] == ["linear", "linear"]
    assert rep.layers[0].parameters == 15
    assert rep.package_bytes == sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert rep.package_bytes > rep.weight_bytes


def test_package_bytes_missing_is_none(tmp_path):
    assert package_bytes(None) is None
    assert package_bytes(tmp_path / "nope") is None
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 10)
    assert package_bytes(f) == 10


def test_const_bytes_counts_sub_byte_constants_packed():
    """analyze.size.const_bytes (used by the lint's 1 GB rule): a 4-bit LUT index is half a byte."""
    import coremltools.optimize.coreml as cto
    import numpy as np
    from coremltools.converters.mil.mil import types

    from devicefit.analyze.size import const_bytes
    from tests.helpers import convert

    ml = convert(_Two(), torch.ones(1, 4), precision="fp16", target="iOS18")
    config = cto.OpPalettizerConfig(nbits=4, mode="uniform", weight_threshold=0)
    small = cto.palettize_weights(ml, cto.OptimizationConfig(global_config=config))
    seen = set()
    for op in small._mil_program.functions["main"].operations:
        if op.op_type != "const" or not types.is_tensor(op.outputs[0].sym_type):
            continue
        dtype, n = types.builtin_to_string(op.outputs[0].dtype), int(np.size(op.outputs[0].val))
        expected = {"uint4": (n + 1) // 2, "fp16": 2 * n}.get(dtype)
        if expected is not None:
            seen.add(dtype)
            assert const_bytes(op) == expected, (op.outputs[0].name, dtype, n)
    assert seen == {"uint4", "fp16"}
