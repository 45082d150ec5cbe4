"""`check` on models written the way outside users write them: each test failed before its fix."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from devicefit.check import CheckOptions, run_check
from devicefit.cli import main

BOOL_MASK = textwrap.dedent(
    """
    import torch


    class MaskedHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x, pad):
            scores = self.proj(x).masked_fill(pad[..., None], -1e4)
            return scores.softmax(dim=1)


    def make_model():
        torch.manual_seed(0)
        pad = torch.zeros(2, 6, dtype=torch.bool)
        pad[1, 4:] = True
        return MaskedHead().eval(), (torch.randn(2, 6, 8), pad)
    """
)


def test_bool_mask_input_is_fed_as_the_float_the_converted_model_takes(tmp_path):
    # Core ML has no bool inputs: the converted model declares the mask fp32, and check fed it the bool array
    # (InputError, exit 2, on a model that converts fine).
    path = tmp_path / "masked.py"
    path.write_text(BOOL_MASK)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"]))
    assert result.convert.ok
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason
    assert result.fp32.outputs  # the comparison ran
    assert main(["check", f"{path}:make_model", "--samples", "2", "--target", "iphone-12"]) in (0, 1)


SEG_ARGMAX = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class Seg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 6, 1)
            )

        def forward(self, x):
            logits = F.interpolate(self.body(x), scale_factor=2, mode="bilinear", align_corners=False)
            return logits.argmax(dim=1)


    def make_model():
        return Seg().eval(), torch.randn(1, 3, 32, 32)
    """
)

TOPK = textwrap.dedent(
    """
    import torch


    class Retrieve(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.proj = torch.nn.Linear(8, 8)
            self.keys = torch.nn.Parameter(torch.randn(40, 8))

        def forward(self, q):
            scores = self.proj(q) @ self.keys.T
            scores = torch.cat([scores, scores[:, :1] + 1e-6], dim=1)  # an exact near-tie: key 0 and key 40
            vals, idx = scores.topk(3, dim=-1)
            return vals, idx


    def make_model():
        return Retrieve().eval(), torch.randn(4, 8)
    """
)


def _numerics(tmp_path, text: str) -> object:
    path = tmp_path / "model.py"
    path.write_text(text)
    return run_check(CheckOptions(model=f"{path}:make_model", samples=4, devices=["iphone-12"], repair=False))


def test_argmax_label_map_is_judged_by_label_agreement_not_relative_error(tmp_path):
    # a few pixels flipping between near-tied classes gave 'max relative error 1' on the label map and a
    # FAIL blaming weight storage
    result = _numerics(tmp_path, SEG_ARGMAX)
    (out,) = result.fp16.outputs
    assert "max_rel_error" not in out.metrics and "snr_db" not in out.metrics
    agreement = out.metrics["top1_agreement"]
    assert agreement.value is not None and agreement.value > 0.99, agreement
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


def test_topk_indices_accept_swaps_between_near_tied_scores(tmp_path):
    result = _numerics(tmp_path, TOPK)
    idx = next(o for o in result.fp16.outputs if o.output == "output_1")
    agreement = idx.metrics["top1_agreement"]
    assert agreement.passed, agreement
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


def test_wrong_indices_still_fail(tmp_path):
    from devicefit.compare.validate import compare

    ref = {"idx": np.array([[0, 1, 2], [3, 4, 5]])}
    bad = {"idx": np.array([[2, 1, 0], [5, 4, 3]])}
    vals = {"vals": np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])}
    result = compare("fp16", {**ref, **vals}, {**bad, **vals}, "pytorch", index_outputs={"idx": "vals"})
    assert not result.passed
    assert result.outputs[0].metrics["top1_agreement"].value < 0.5


def test_topk_index_swap_at_the_kth_place_within_the_scores_error_is_a_tie():
    from devicefit.compare.metrics import index_agreement

    # reference keys 4 and 6 score -0.005220 and -0.005225 (PyTorch); fp16 weights move every score by ~1e-4
    ref, cand = np.array([[11, 5, 4]]), np.array([[11, 5, 6]])
    ref_vals = np.array([[1.7e-4, -3.0e-4, -5.2205e-3]])
    cand_vals = ref_vals + np.array([[8e-5, -6e-5, -4e-6]])
    assert index_agreement(ref, cand, 0.99, ref_vals, cand_vals).value == 1.0
    # an index from outside the reference's top-k anywhere but at the k-th place is wrong, not a tie
    assert index_agreement(ref, np.array([[11, 7, 4]]), 0.99, ref_vals, ref_vals).value < 1.0


def test_generated_masks_keep_a_real_token_in_every_row_before_padding():
    # random 0/1 masks padded a causal LM on the left: the padding positions' rows attend to nothing, their
    # (unused) logits are undefined and differ between PyTorch and Core ML; check called it a conversion problem
    from devicefit.sources.data import generate
    from devicefit.sources.spec import InputSpec

    specs = [InputSpec("input_ids", (2, 12), "int32"), InputSpec("attention_mask", (2, 12), "int32")]
    like = {"input_ids": np.arange(24).reshape(2, 12), "attention_mask": np.array([[1] * 9 + [0] * 3] * 2)}
    data = generate(specs, 32, seed=0, like=like)
    masks = np.stack([f["attention_mask"] for f in data.feeds]).reshape(-1, 12)
    assert set(np.unique(masks)) == {0, 1}
    assert (masks[:, 0] == 1).all()  # a real token first: padding only after it (right padding)
    assert (np.diff(masks, axis=1) <= 0).all()  # never a 0 before a 1
    assert len({int(m.sum()) for m in masks}) > 3  # the padding length still varies


GPT2 = textwrap.dedent(
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel


    def make_model():
        torch.manual_seed(0)
        cfg = GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=1, n_head=4)
        ids = torch.randint(0, 100, (1, 12))
        mask = torch.ones(1, 12, dtype=torch.long)
        mask[:, 9:] = 0
        return GPT2LMHeadModel(cfg).eval(), {"input_ids": ids, "attention_mask": mask}
    """
)


def test_causal_lm_with_an_attention_mask_is_not_a_conversion_problem(tmp_path):
    result = _numerics(tmp_path, GPT2)
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


HASHED = textwrap.dedent(
    """
    import torch


    class HashedTokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(97, 8)
            self.head = torch.nn.Linear(8, 4)

        def forward(self, ids):
            scale = (ids.float() * 0.5 + 1.0).mean()  # several values of one shape on one line
            buckets = (ids * 1000003 + 12345) % 97  # LINE_HASH: int32 wraps where int64 does not
            return self.head(self.emb(buckets).mean(1)) * scale


    def make_model():
        return HashedTokens().eval(), torch.randint(0, 30000, (2, 16))
    """
)


def test_conversion_problem_names_the_line_where_values_first_differ(tmp_path):
    # the verdict said 'conversion problem: SNR -1.6 dB' and nothing about where
    result = _numerics(tmp_path, HASHED)
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail" and "conversion problem" in verdict.reason
    line = next(i for i, text in enumerate(HASHED.splitlines(), 1) if "LINE_HASH" in text)
    assert f"model.py:{line}" in result.extras["conversion_divergence"]["where"]
    assert f"model.py:{line}" in verdict.reason


NESTED_OUTPUTS = textwrap.dedent(
    """
    import torch


    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.head = torch.nn.Linear(4, 6)

        def forward(self, x):
            h = self.head(x)
            return {"logits": h, "aux": (h.sum(-1), {"boxes": h.sigmoid()[..., :4]})}


    def make_model():
        return Detector().eval(), torch.randn(2, 4)
    """
)


def test_nested_outputs_are_converted_not_dropped(tmp_path):
    # the converted model had 'logits' only: 'aux' (a tuple holding a dict) vanished and check passed
    result = _numerics(tmp_path, NESTED_OUTPUTS)
    assert [o.name for o in result.program.outputs] == ["logits", "aux_0", "aux_1_boxes"]
    assert {o.output for o in result.fp16.outputs} == {"logits", "aux_0", "aux_1_boxes"}
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


def test_flat_output_names_are_unchanged():
    import torch

    from devicefit.sources.spec import flatten_outputs

    a, b = torch.zeros(1), torch.ones(1)
    assert [n for n, _ in flatten_outputs((a, None, b))] == ["output_0", "output_1"]
    assert [n for n, _ in flatten_outputs((None, a))] == ["output"]
    assert [n for n, _ in flatten_outputs((a, [b, {"c": a}]))] == ["output_0", "output_1_0", "output_1_1_c"]


OUTLIER_RESIDUAL = textwrap.dedent(
    """
    import torch


    class RMSNorm(torch.nn.Module):
        def forward(self, x):
            var = x.pow(2).mean(-1, keepdim=True)  # LINE_SQUARE: x ~ 400, x**2 > 65504 in fp16
            return x * torch.rsqrt(var + 1e-6)


    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = RMSNorm()
            self.mlp = torch.nn.Linear(32, 32)

        def forward(self, x):
            return x + self.mlp(self.norm(x))  # the residual hides the dead branch from the outputs


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(50, 32)
            with torch.no_grad():
                self.emb.weight.mul_(400.0)
            self.block = Block()
            self.out = torch.nn.Linear(32, 50)

        def forward(self, ids):
            return self.out(self.block(self.emb(ids)))


    def make_model():
        return Net().eval(), torch.randint(0, 50, (1, 12))
    """
)


@pytest.mark.slow
def test_overflow_with_outputs_in_tolerance_gets_a_verified_fix(tmp_path):
    # the fp16 variance overflows (inf -> rsqrt 0 -> the branch is dead) while the residual keeps the outputs
    # within tolerance: the cosine-guided repair had 'no op set to offer'
    path = tmp_path / "model.py"
    path.write_text(OUTLIER_RESIDUAL)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=4, devices=["iphone-12"]))
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail" and "overflow" in verdict.reason
    fix = result.repair
    assert fix is not None and fix.ops, verdict.reason
    assert fix.verified is not None and fix.verified.passed
    assert any("model.py:" in (o.origin or "") for o in fix.ops)
    assert "--fp32-ops" in verdict.reason and "no op set" not in verdict.reason
    # applying the fix removes the overflow
    fixed = run_check(
        CheckOptions(model=f"{path}:make_model", samples=4, devices=["iphone-12"], precision="mixed",
                     fp32_ops=[o.name for o in fix.ops])
    )  # fmt: skip
    assert not fixed.divergence.overflow_ops
    assert fixed.verdicts["numerics"].status != "fail", fixed.verdicts["numerics"].reason


def test_the_fix_verification_judges_label_outputs_by_agreement(tmp_path):
    from devicefit.check.repair import Fp16Fix, _verify
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    path = tmp_path / "seg.py"
    path.write_text(SEG_ARGMAX)
    source = load_source(f"{path}:make_model")
    mlmodel = convert(source, ConvertOptions(precision="fp32")).mlmodel
    feeds = [source.example_inputs]
    reference = {k: v.copy() for k, v in source.reference(feeds[0]).items()}
    labels = reference["output"]
    labels.flat[7] = (labels.flat[7] + 1) % 6  # one pixel of 4096 flipped: a near-tie, not a broken model
    fix = Fp16Fix([], True, 1.0, 1.0, 0.9995)
    _verify(mlmodel, fix, feeds, reference, None, against_fp32=False)
    assert fix.verified.passed, fix.verified.headline()
