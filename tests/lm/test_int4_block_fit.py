"""check's int4 run on a model whose sizes block 32 does not divide (hidden 40, MLP 88: real small models have
such sizes). The whole check stopped with exit 2 ("block size 32 does not divide the input size 40"); now each
such weight takes the largest block that divides its input size (down to 8), per-channel int4 where none does,
and a note says which."""

from __future__ import annotations

from pathlib import Path

import pytest


def _odd_llama():  # type: ignore[no-untyped-def]
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=96, hidden_size=40, intermediate_size=76, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, initializer_range=0.2,
    )  # fmt: skip
    return tf.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def odd_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from devicefit.convert.stateful import convert_causal_lm

    out = tmp_path_factory.mktemp("odd") / "odd.mlpackage"
    convert_causal_lm(_odd_llama(), out, max_context=8, precision="fp16")
    return out


def test_fitted_blocks_compress_every_weight_and_say_which_changed(odd_pkg: Path, tmp_path: Path) -> None:
    import devicefit.interp as interp
    from devicefit.compress.lm import compress_lm
    from devicefit.convert.merge import weight_bytes
    from devicefit.errors import InputError

    plan = dict.fromkeys(("embeddings", "lm_head", "attention", "mlp"), "int4-b32")
    # an explicit plan stays strict: the user chose the block size
    with pytest.raises(InputError, match="block size 32 does not divide the input size 40"):
        compress_lm(odd_pkg, plan, tmp_path / "strict.mlpackage")
    notes: list[str] = []
    names = [n for n, _ in _odd_llama().named_parameters()]
    out = compress_lm(
        odd_pkg, plan, tmp_path / "fit.mlpackage", fit_blocks=True, notes=notes, parameter_names=names
    )
    decode = interp.load(out, function="decode")
    quantized = decode.op_counts.get("constexpr_blockwise_shift_scale", 0)
    # embedding, lm_head, q/k/v/o, gate/up/down: every one compressed, none left at fp16
    assert quantized >= 9, decode.op_counts
    assert weight_bytes(out) < 0.45 * weight_bytes(odd_pkg)
    text = " ".join(notes)
    # input size 40 -> block 8 (q/k/v, gate/up, lm_head take the hidden size), 76 -> per-channel (down_proj)
    assert "block 8" in text and "per-channel" in text, notes
    # named by the PyTorch module, not the Core ML constant
    assert "model.layers.0.mlp.down_proj" in text and "_to_fp16" not in text, notes


@pytest.mark.slow
def test_check_of_an_lm_with_odd_sizes_runs_its_int4_step(tmp_path: Path) -> None:
    import json

    from devicefit.cli import main

    folder = tmp_path / "odd-llama"
    _odd_llama().save_pretrained(folder)
    report = tmp_path / "r.json"
    code = main(["check", str(folder), "--steps", "3", "--max-context", "16", "--json", str(report)])
    data = json.loads(report.read_text())
    assert code in (0, 1), code
    runs = {r["name"] for r in data["generation"]["runs"]}
    assert runs == {"fp32", "fp16", "int4"}
    assert any("per-channel" in n for n in data["notes"]), data["notes"]


# slow (the fast suite's 15-minute budget, 2026-12-02): ~6 s; the block fitting itself stays fast above
@pytest.mark.slow
def test_the_ladder_fits_its_smallest_block_instead_of_skipping_every_int4_rung(
    odd_pkg: Path, tmp_path: Path
) -> None:
    from devicefit.compress.lm import GROUPS, search_lm

    # every rung meets the budget: the first rung that can be built is chosen. Block 128 does not divide 40
    # and is skipped (a rung with the ladder's smallest block follows); block 32, the smallest, was skipped
    # too (every int4 rung of the ladder, for any model with such sizes) and is now fitted per weight
    ladder = (("b128", dict.fromkeys(GROUPS, "int4-b128")), ("b32", dict.fromkeys(GROUPS, "int4-b32")))
    result = search_lm(odd_pkg, "tokens>=0.5", lambda _p: (None, 1.0), None, tmp_path / "t.mlpackage", ladder)
    assert result.chosen is not None and result.chosen.name == "b32", result.skipped
    assert len(result.skipped) == 1 and "block size 128" in result.skipped[0], result.skipped
    assert any("took int4 block 8" in n for n in result.chosen.notes), result.chosen.notes
    assert any("per-channel" in n for n in result.chosen.notes), result.chosen.notes
