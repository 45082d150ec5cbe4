"""Padded positions of user data (attention mask 0) are left out of check's comparisons.

A left-padded row of a causal LM attends to no key at all: PyTorch and the converted program fill it with
different (equally meaningless) values. Comparing them called a correct conversion a conversion problem.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from devicefit.compare.padding import find_padding, sequence_keep
from devicefit.compare.validate import compare

LENGTH = 10
PADS = (0, 3, 5, 1)  # left padding per sample; the first has none


def _left_padded(vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (len(PADS), LENGTH)).astype(np.int64)
    mask = np.ones_like(ids)
    for row, pad in enumerate(PADS):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _feeds(data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [{k: v[i : i + 1] for k, v in data.items()} for i in range(len(PADS))]


def test_mask_found_by_role_and_values_not_by_any_zero_one_input():
    data = _left_padded(50)
    feeds = [{"token_type_ids": f["attention_mask"] * 0, **f} for f in _feeds(data)]
    found = find_padding(feeds)
    assert found is not None and found.input == "attention_mask"
    assert found.excluded == sum(PADS) and found.positions == len(PADS) * LENGTH
    # token_type_ids hold 0/1 too, but they are not a mask: no padding without the mask
    assert find_padding([{k: v for k, v in f.items() if k != "attention_mask"} for f in feeds]) is None
    # torch.nn.MultiheadAttention's key_padding_mask: True marks padding
    torch_style = [{"key_padding_mask": ~f["attention_mask"].astype(bool)} for f in _feeds(data)]
    found = find_padding(torch_style)
    assert found is not None and found.tokens[1].tolist() == [[False] * 3 + [True] * 7]
    # an additive float mask (0 / -inf, 4-D) is not a 0/1 token mask
    assert find_padding([{"attention_mask": np.zeros((1, 1, 4, 4), np.float32)}]) is None


def test_sequence_axis_matched_by_length_after_the_batch_axis():
    tokens = np.array([[False, True, True]])
    logits = np.zeros((1, 3, 7), np.float32)
    assert sequence_keep(logits, tokens).shape == (1, 3, 1)
    assert sequence_keep(np.zeros((1, 7), np.float32), tokens) is None  # pooled: compared whole
    scores = np.zeros((1, 2, 3, 3), np.float32)  # (batch, heads, queries, keys)
    assert sequence_keep(scores, tokens).shape == (1, 1, 3, 1)
    both = sequence_keep(scores, tokens, every_axis=True)
    assert both.shape == (1, 1, 3, 3) and int(both.sum()) == 4


def test_compare_leaves_padding_out_but_still_fails_on_token_positions():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 5, 11))
    tokens = np.array([[False, False, True, True, True], [True] * 5])
    keep = tokens[:, :, None]
    garbage = ref.copy()
    garbage[0, :2] = rng.standard_normal((2, 11)) * 50  # padded rows: anything
    assert not compare("fp32", {"logits": ref}, {"logits": garbage}, "pytorch")
    assert compare("fp32", {"logits": ref}, {"logits": garbage}, "pytorch", keep={"logits": keep})
    broken = garbage.copy()
    broken[1, 3] += rng.standard_normal(11)  # one token position wrong
    failed = compare("fp32", {"logits": ref}, {"logits": broken}, "pytorch", keep={"logits": keep})
    assert not failed and failed.outputs[0].metrics["cosine_similarity"].value < 0.999


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, initializer_range=0.2,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("padded") / "llama"
    tf.LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


def test_left_padded_user_data_does_not_fail_a_correct_causal_lm(llama_folder, tmp_path, capsys):
    from devicefit.cli import main

    np.savez(tmp_path / "left.npz", **_left_padded(64))
    report = tmp_path / "r.json"
    code = main([
        "check", str(llama_folder), "--task", "default", "--data", str(tmp_path / "left.npz"), "--no-fix",
        "--input", f"input_ids:1x{LENGTH}:int64", "--input", f"attention_mask:1x{LENGTH}:int64",
        "--json", str(report),
    ])  # fmt: skip
    r = json.loads(report.read_text())
    assert r["verdicts"]["numerics"]["status"] != "fail", r["verdicts"]["numerics"]
    assert code == 0
    assert r["summary"]["conversion_fidelity.snr_db"] > 60
    # the fp16 divergence search looks at token positions too: padded rows are no "first divergent op"
    assert "diverges" not in r["verdicts"]["numerics"]["reason"]
    padding = r["extras"]["padding"]
    assert padding["input"] == "attention_mask"
    assert padding["excluded_positions"] == sum(PADS) and padding["positions"] == len(PADS) * LENGTH
    assert padding["outputs"] == {"logits": sum(PADS)}
    said = " ".join(capsys.readouterr().out.split())
    assert f"{sum(PADS)} of {len(PADS) * LENGTH} positions have attention_mask marking padding" in said


MASKED_THEN_HASHED = """
import torch


class MaskedAttentionThenHash(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(64, 8)
        self.emb2 = torch.nn.Embedding(97, 8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, input_ids, attention_mask):
        x = self.emb(input_ids)[:, None]
        n = input_ids.shape[1]
        allowed = (attention_mask[:, None, None, :] > 0) & torch.ones(n, n, dtype=torch.bool).tril()
        # a left-padded query row masks every key: NaN in PyTorch, finite in the program
        probs = torch.softmax((x @ x.transpose(-1, -2)).masked_fill(~allowed, float("-inf")), -1)  # LINE_ATTN
        att = (probs @ x)[:, 0]
        buckets = ((att.sum(-1).abs() * 100000).long() * 1000003 + 12345) % 97  # LINE_HASH: int32 wraps
        return self.head(att + self.emb2(buckets))


def make_model():
    ids = torch.randint(1, 64, (1, 10))
    return MaskedAttentionThenHash().eval(), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
"""


def test_localisation_skips_padded_positions_and_names_the_real_line(tmp_path):
    """A left-padded row attends to nothing: PyTorch's softmax there is NaN, the program's finite. The
    localisation compared those rows and blamed the attention line; the conversion problem is the hash."""
    from devicefit.check.pipeline import run_check
    from devicefit.check.types import CheckOptions

    (tmp_path / "model.py").write_text(MASKED_THEN_HASHED)
    np.savez(tmp_path / "left.npz", **_left_padded(64))
    result = run_check(CheckOptions(
        model=f"{tmp_path / 'model.py'}:make_model", data=str(tmp_path / "left.npz"), samples=4,
        inputs=[f"input_ids:1x{LENGTH}:int64", f"attention_mask:1x{LENGTH}:int64"], devices=["iphone-12"],
        repair=False,
    ))  # fmt: skip
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail" and "conversion problem" in verdict.reason
    line = next(i for i, text in enumerate(MASKED_THEN_HASHED.splitlines(), 1) if "LINE_HASH" in text)
    assert result.extras["conversion_divergence"]["where"].endswith(f"model.py:{line}"), result.extras
