"""``devicefit profile`` on a language model: time to first token, prefill and decode tokens/s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devicefit.cli import main
from devicefit.convert.merge import weight_bytes
from devicefit.engines.lm_session import TorchLM, greedy
from devicefit.errors import InputError
from devicefit.profile.generation import decode_bounds, is_stateful_lm_package, profile_generation
from tests.lm.families import tiny_lm


def test_profile_generation_counts_tokens_and_runs(llama_pkg: tuple[object, Path]) -> None:
    model, pkg = llama_pkg
    r = profile_generation(pkg, prompt_tokens=3, new_tokens=5, runs=2, warmup=1, precision="fp32")
    assert (r.prompt_tokens, r.new_tokens, r.runs, r.max_context) == (3, 5, 2, 24)
    assert len(r.ttft_s) == len(r.decode_s) == 2 and len(r.prompt) == 3
    # the two timed calls give exactly the tokens of one greedy generation of 5 (PyTorch's, in fp32)
    assert r.tokens == greedy(TorchLM(model, 24), np.array(r.prompt), 5).argmax(axis=-1).tolist()
    assert all(v > 0 for v in [*r.prefill_tokens_per_s, *r.decode_tokens_per_s])
    assert r.decode_tokens_per_s == [4 / t for t in r.decode_s]  # N - 1 decode steps
    med = r.medians()
    assert med["prefill_tokens_per_s"] > 0 and med["decode_tokens_per_s"] > 0 and med["ttft_ms"] > 0
    data = json.loads(json.dumps(r.to_json()))
    assert data["median"] == med and len(data["decode_tokens_per_s"]) == 2
    # bytes per token: weights + both fp16 caches (2 layers x 1 x 2 kv heads x 24 x head dim 16)
    assert r.bytes_per_token == weight_bytes(pkg) + 2 * (2 * 2 * 24 * 16) * 2
    with_bw = [b for b in r.bounds if b.bandwidth_gbps]
    assert with_bw and all(
        b.tokens_per_s_bound == b.bandwidth_gbps * 1e9 / r.bytes_per_token for b in with_bw
    )


def test_profile_generation_rejects_what_does_not_fit(llama_pkg: tuple[object, Path], tmp_path: Path) -> None:
    _, pkg = llama_pkg
    with pytest.raises(InputError, match="needs a context of 30; the package holds 24"):
        profile_generation(pkg, prompt_tokens=10, new_tokens=21)
    with pytest.raises(InputError, match="2 new tokens"):
        profile_generation(pkg, prompt_tokens=3, new_tokens=1)
    with pytest.raises(InputError, match="runs must be >= 1"):
        profile_generation(pkg, runs=0)
    assert not is_stateful_lm_package(tmp_path / "missing.mlpackage")
    with pytest.raises(InputError, match="not a stateful LM package"):
        profile_generation(tmp_path / "missing.mlpackage")
    assert decode_bounds(100, []) == []


def test_cli_profile_prints_and_writes_tokens_per_s(
    llama_pkg: tuple[object, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pkg = llama_pkg
    out = tmp_path / "p.json"
    args = ["profile", str(pkg), "--prompt-tokens", "3", "--new-tokens", "4", "--gen-runs", "2"]
    assert main([*args, "--precision", "fp32", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "time to first token:" in text and "(prompt of 3 tokens)" in text
    assert "prefill:" in text and "decode:" in text and "(3 decode steps of 4 generated tokens)" in text
    data = json.loads(out.read_text())
    (gen,) = data["generation"]
    assert (gen["precision"], gen["prompt_tokens"], gen["new_tokens"], len(gen["ttft_s"])) == (
        "fp32",
        3,
        4,
        2,
    )
    assert gen["median"]["decode_tokens_per_s"] > 0 and len(gen["tokens"]) == 4
    # --target picks the devices of the decode bound line; one without a bandwidth figure is marked partial
    assert main([*args, "--target", "iphone-11", "--target", "iphone-8", "--json", str(out), "--force"]) == 0
    text = capsys.readouterr().out
    assert "decode tokens/s upper bound" in text and "iPhone 11 " in text and "partial: 1 device" in text
    (gen,) = json.loads(out.read_text())["generation"]
    assert [b["device"] for b in gen["bounds"]] == ["iphone-11", "iphone-8"] and gen["precision"] == "fp16"
    assert main([*args, "--engine", "onnxruntime"]) == 2  # only the interpreter runs LM state
    assert main([*args, "--new-tokens", "30"]) == 2


@pytest.mark.slow
def test_cli_profile_converts_a_causal_lm_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-llama"
    tiny_lm("llama").save_pretrained(folder)
    out = tmp_path / "p.json"
    args = ["profile", str(folder), "--max-context", "16", "--gen-runs", "1", "--json", str(out)]
    assert main(args) == 0
    (gen,) = json.loads(out.read_text())["generation"]
    assert gen["max_context"] == 16 and gen["precision"] == "fp16"
    assert gen["prompt_tokens"] + gen["new_tokens"] - 1 <= 16 and len(gen["tokens"]) == gen["new_tokens"]
