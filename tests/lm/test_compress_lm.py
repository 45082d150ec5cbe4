"""compress_lm on a stateful package: per-role widths, shared weights kept, rotary tables untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from devicefit.errors import InputError


@pytest.mark.slow
def test_int4_per_block_compresses_both_functions_once(
    llama_pkg: tuple[object, Path], tmp_path: Path
) -> None:
    import devicefit.interp as interp
    from devicefit.compress.lm import compress_lm
    from devicefit.convert.merge import weight_bytes

    _, pkg = llama_pkg
    out = compress_lm(
        pkg,
        dict.fromkeys(("embeddings", "lm_head", "attention", "mlp"), "int4-b32"),
        tmp_path / "q.mlpackage",
    )
    for fn in ("prefill", "decode"):
        prog = interp.load(out, function=fn)
        assert (
            prog.op_counts.get("constexpr_blockwise_shift_scale", 0) >= 7 * 2 + 2
        )  # 7 linears/layer + emb + head
    # fp32 package -> int4 per-block: about 4.5 / 32 of the size, one copy for both functions
    assert weight_bytes(out) < 0.25 * weight_bytes(pkg)
    with pytest.raises(
        InputError, match=r"block size 128 does not divide the input size 64 .*\(e.g. int4-b64\)"
    ):
        compress_lm(pkg, {"mlp": "int4-b128"}, tmp_path / "b.mlpackage")
    with pytest.raises(InputError, match="unknown weight group 'norms'"):
        compress_lm(pkg, {"norms": "int8"}, tmp_path / "c.mlpackage")
    with pytest.raises(InputError, match=r"must end with \.mlpackage"):
        compress_lm(pkg, {"mlp": "int8"}, tmp_path / "e")
    with pytest.raises(InputError, match="unknown width 'int2'"):
        compress_lm(pkg, {"mlp": "int2"}, tmp_path / "d.mlpackage")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_mixture_of_experts_weights_are_compressed_too(family: str, tmp_path: Path) -> None:
    """The 3-D expert tensors (most of an MoE model's weights) keep their names through the conversion, so
    the plan reaches them: they were left at fp16 while the size ladder promised int4."""
    import devicefit.interp as interp
    from devicefit.compress.lm import compress_lm
    from devicefit.convert.merge import weight_bytes
    from devicefit.convert.stateful import convert_causal_lm
    from tests.lm.families import tiny_lm

    pkg = tmp_path / "moe.mlpackage"
    convert_causal_lm(tiny_lm(family), pkg, max_context=16, precision="fp32")
    out = compress_lm(
        pkg,
        dict.fromkeys(("embeddings", "lm_head", "attention", "mlp"), "int4-b32"),
        tmp_path / "q.mlpackage",
    )
    assert weight_bytes(out) < 0.25 * weight_bytes(pkg)
    decode = interp.load(out, function="decode")
    # 2 layers x (gate_up_proj + down_proj) expert tensors among the block-quantized constants
    assert decode.op_counts.get("constexpr_blockwise_shift_scale", 0) >= 2 * 2 + 2 * 4 + 2
