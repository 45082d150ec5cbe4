"""check's verdicts on outputs and inputs that are not a classifier's: hidden states, categorical columns, fp16 inputs.

Each test reproduces a wrong or silent verdict first (the failing case is in its docstring).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.compare.class_axis import ClassAxis
from devicefit.compare.metrics import METRICS, snr_db, topk_agreement

# ---------------------------------------------------------------- top-k: noise at the top, features get none


def _relative_noise(rel: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance scores with noise proportional to each value, as fp16 rounding leaves it."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((16, 64, 384))
    return ref, ref * (1.0 + rel * rng.standard_normal(ref.shape))


def test_topk_tie_window_uses_the_noise_of_the_top_scores():
    """0.5% relative noise (46 dB) gave top-1 0.9873 and top-5 0.9736 (< 0.99): the whole-output median of |error|
    reads the typical score (|x| ~ 0.67), ~4x below the error of the top scores (|x| ~ 3) fp16 rounds."""
    ref, cand = _relative_noise(5e-3)
    assert snr_db(ref, cand).value > 45.0
    top1, top5 = topk_agreement(ref, cand, 1), topk_agreement(ref, cand, 5)
    assert top1.value >= 0.99 and top5.value >= 0.99, (top1.value, top5.value)
    # the noise reported is the top scores' (about 3 x 0.5% = 0.015), not the median element's (~0.003)
    assert top1.details["noise"] > 0.01


def test_topk_at_the_top_still_catches_a_wrong_top_class():
    """The top-noise is a median over rows: one in ten rows whose top score is wrong does not widen the window."""
    ref, cand = _relative_noise(1e-3, seed=1)
    rows = ref.reshape(-1, 384)
    wrong = cand.reshape(-1, 384).copy()
    picked = np.arange(0, len(rows), 10)
    second = np.argsort(-rows[picked], axis=1)[:, 3]
    wrong[picked, second] = rows[picked].max(axis=1) + 0.5  # the 4th unit overtakes the 1st by a wide gap
    result = topk_agreement(rows, wrong, 1, tol=0.99)
    assert not result and result.details["disagreeing"] >= len(picked)


class _Heads(torch.nn.Module):
    """One N x L x 48 projection leaving through each tail an unnamed output may have (one conversion for all)."""

    TAILS = ("layer_norm", "gelu", "silu", "linear", "softcap", "mean", "masked", "first")

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj, self.norm = torch.nn.Linear(16, 48), torch.nn.LayerNorm(48)

    def forward(self, x):
        y = self.proj(x)
        h = self.norm(y)
        mask = (x[..., :1] > -5).float()
        return (
            h,
            torch.nn.functional.gelu(y),
            torch.nn.functional.silu(y) * 2.0,
            y,
            torch.tanh(y / 30.0) * 30.0,  # Gemma 2's logit soft-capping keeps the linear head's class axis
            h.mean(
                1
            ),  # sentence embeddings: the mean, masked mean and first token of the LayerNorm's features
            (h * mask).sum(1) / mask.sum(1),
            h[:, 0],
        )


@pytest.fixture(scope="module")
def heads():
    from devicefit import interp
    from devicefit.compare.class_axis import head_axes
    from tests.helpers import convert

    program = interp.load(convert(_Heads(), torch.randn(1, 5, 16)))
    names = [o.name for o in program.outputs]
    found = head_axes(program)
    return {tail: found.get(name) for tail, name in zip(_Heads.TAILS, names, strict=True)}


@pytest.mark.parametrize("tail", ["layer_norm", "gelu", "silu"])
def test_features_out_of_a_norm_or_activation_get_no_topk(heads, tail):
    """An unnamed hidden state computed by a final LayerNorm / GELU / SiLU got top-k over its hidden units (a
    linear head traced through the activation, or no evidence); near-tied features then fail top-1 at a good
    SNR."""
    from devicefit.compare.class_axis import decide

    head = heads[tail]
    assert head is not None and head.axis is None and tail in head.evidence, head
    decided = decide("var_9", np.zeros((4, 5, 48), np.float32), head)
    assert decided.axis is None and "features" in decided.evidence
    # pooled to N x 48 by the same op: no rank-2 "last axis" default either
    pooled = ClassAxis(None, head.evidence, 2)
    assert decide("var_9", np.zeros((4, 48), np.float32), pooled).axis is None
    # a name that says scores, or the labelled output, keeps top-k (rank 2: the last axis)
    assert decide("logits", np.zeros((4, 48), np.float32), pooled).axis == 1
    assert decide("var_9", np.zeros((4, 48), np.float32), pooled, labelled=True).axis == 1


@pytest.mark.parametrize("tail", ["mean", "masked", "first"])
def test_pooled_features_get_no_topk(heads, tail):
    """A pooled embedding (rank 2, no name) got the rank-2 default: top-k over its 48 features."""
    from devicefit.compare.class_axis import decide

    head = heads[tail]
    assert head is not None and head.axis is None and "layer_norm" in head.evidence, head
    assert decide("var_9", np.zeros((4, 48), np.float32), head).axis is None


def test_a_linear_head_still_gets_topk(heads):
    assert heads["linear"].axis == 2 and heads["softcap"].axis == 2, heads


def test_a_pooled_or_reshaped_head_falls_back_to_the_shape_rules():
    """A conv head's class maps, ReLU'd and averaged to N x C (SqueezeNet), keep top-k by the rank-2 rule."""
    from devicefit import interp
    from devicefit.compare.class_axis import decide, head_axes
    from tests.helpers import convert

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 5, 1), torch.nn.ReLU()
    )
    pooled = torch.nn.Sequential(net, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    program = interp.load(convert(pooled, torch.randn(1, 3, 8, 8)))
    (name,) = [o.name for o in program.outputs]
    assert name not in head_axes(program)
    assert decide(name, np.zeros((4, 5), np.float32), head_axes(program).get(name)).axis == 1


# ---------------------------------------------------------------- integer inputs: one range per table, not per tensor

TABULAR = """
import torch
from torch import nn


class Tab(nn.Module):
    def __init__(self, shared):
        super().__init__()
        torch.manual_seed(0)
        self.sizes, self.shared = (5, 1000, 20), shared
        if shared:  # one table, each column's ids shifted past the previous columns' (FT-Transformer style)
            self.table = nn.Embedding(sum(self.sizes), 8)
            self.register_buffer("offsets", torch.tensor([0, 5, 1005]))
        else:
            self.embs = nn.ModuleList([nn.Embedding(n, 8) for n in self.sizes])
        self.head = nn.Linear(24 + 4, 3)

    def forward(self, x_cat, x_num):
        if self.shared:
            parts = list(self.table(x_cat + self.offsets).unbind(1))
        else:
            parts = [e(x_cat[:, i]) for i, e in enumerate(self.embs)]
        return self.head(torch.cat(parts + [x_num], -1))


def make_model():
    return Tab(SHARED).eval(), (torch.tensor([[1, 742, 7], [4, 15, 19]]), torch.randn(2, 4))
"""


@pytest.mark.parametrize("shared", [False, True])
def test_categorical_columns_get_the_range_of_their_own_table(tmp_path, shared):
    """x_cat (N x 3) feeding tables of 5, 1000 and 20 rows got ids 1..742 in every column: 15 of 16 generated
    samples were refused by PyTorch (IndexError) and check validated on the example alone."""
    from devicefit.check import CheckOptions
    from devicefit.check.sources import load_dataset
    from devicefit.sources import load_source

    path = tmp_path / "tab.py"
    path.write_text(TABULAR.replace("SHARED", str(shared)))
    source = load_source(str(path))
    data = load_dataset(source, CheckOptions(model=str(path)))
    assert len(data.feeds) == 16, data.notes
    cats = np.stack([f["x_cat"] for f in data.feeds[1:]])
    for column, rows in enumerate((5, 1000, 20)):
        assert cats[..., column].max() < rows and cats[..., column].min() >= 1
    assert cats[..., 1].max() > 20  # the wide column keeps the example's wide range
    note = " ".join(data.notes)
    assert "'x_cat'" in note and "column 0 indexes a table of" in note and "column 1" not in note


# ---------------------------------------------------------------- a float16 example input to a float32 model

FOURIER = """
import torch
from torch import nn


class Fourier(nn.Module):
    # NeRF-style positional encoding: sin / cos of the input at 1 .. 512 times its value, then an MLP
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("freqs", 2.0 ** torch.arange(10))
        self.mlp = nn.Sequential(nn.Linear(3 * 20, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, xyz):
        x = xyz.float()[..., None] * self.freqs
        return self.mlp(torch.cat([torch.sin(x), torch.cos(x)], -1).flatten(-2))


def make_model():
    return Fourier().eval(), torch.rand(64, 3).half()
"""


def test_a_float16_example_input_is_fed_as_float16_values_to_both_sides_with_a_note(tmp_path):
    """PyTorch took the input as float16 (its example's dtype) and rounded every generated sample; the converted
    model declares float32 and computed on the unrounded values: "conversion problem ... SNR 31.0 dB" for an
    exact conversion, and nothing said the input types differ."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "fourier.py"
    path.write_text(FOURIER)
    result = run_check(CheckOptions(model=str(path), samples=4, repair=False, devices=["iphone-12"]))
    fidelity = result.questions["conversion_fidelity"]
    assert fidelity.passed, result.verdicts["numerics"].reason
    assert fidelity.comparison.worst("snr_db") > 60.0
    note = next(w for w in result.warnings if "float16" in w)
    assert "'xyz'" in note and "float32" in note
    for feeds in result.dataset.feeds:  # the values a float16 input holds, as the float32 Core ML declares
        xyz = feeds["xyz"]
        assert xyz.dtype == np.float32 and np.array_equal(xyz, xyz.astype(np.float16).astype(np.float32))


# ---------------------------------------------------------------- integer / boolean outputs, all-zero outputs

MASKS = """
import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 64)

    def forward(self, x):
        y = self.fc(x)
        return y, y > 0  # scores and the mask of the positive ones


def make_model():
    return Gate().eval(), torch.randn(4, 16)
"""


def test_a_boolean_output_is_judged_by_exact_match_not_relative_error(tmp_path):
    """Core ML returns the mask as float 0/1, and the fp16-vs-fp32 question judged it by relative error: one bit
    of 4096 flipped at a score within fp16 rounding of 0 read 'fp16 compute precision loss, max relative error
    1 on output_1'."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "gate.py"
    path.write_text(MASKS)
    result = run_check(CheckOptions(model=str(path), repair=False, devices=["iphone-12"]))
    assert result.verdicts["numerics"].status == "pass", result.verdicts["numerics"].reason
    for question in result.questions.values():
        mask = question.comparison.outputs[1].metrics
        assert set(mask) == {"max_abs_error", "exact_match"}, mask
        assert mask["exact_match"].value >= 0.99


def test_exact_match_fails_a_mask_that_is_wrong():
    from devicefit.compare.validate import compare

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 512)) > 0
    wrong = ref.copy()
    wrong[:, ::20] = ~wrong[:, ::20]  # 5% of the bits
    result = compare("fp16", {"mask": ref}, {"mask": wrong.astype(np.float32)}, "pytorch")
    assert not result.passed
    assert result.headline().startswith("exact match 0.9492 (>= 0.99)"), result.headline()
    # the same float 0/1 values named discrete by the caller (Core ML has no bool outputs)
    floats = compare(
        "compute", {"m": ref.astype(np.float32)}, {"m": wrong.astype(np.float32)}, "x", discrete={"m"}
    )
    assert "exact_match" in floats.outputs[0].metrics and not floats.passed


def test_an_all_zero_reference_is_compared_absolutely():
    """PyTorch's exact 0 against a 1e-7 residue read cosine 0 and SNR -inf: a FAIL of nothing."""
    from devicefit.compare.validate import compare

    zero = np.zeros((4, 32))
    residue = compare("fp32", {"z": zero}, {"z": zero + 1e-7}, "pytorch")
    assert residue.passed, residue.headline()
    assert set(residue.outputs[0].metrics) == {
        "max_abs_error",
        "max_rel_error",
        "top1_agreement",
        "top5_agreement",
    }
    snr = METRICS["snr_db"](zero, zero + 1e-7)
    assert snr.value is None and "all zero" in snr.details["reason"]
    assert METRICS["cosine_similarity"](zero, zero + 1e-7).value is None
    garbage = compare("fp32", {"z": zero}, {"z": zero + 0.5}, "pytorch")
    assert not garbage.passed and garbage.headline().startswith("max relative error 0.5"), garbage.headline()
    same = compare("fp32", {"z": zero}, {"z": zero}, "pytorch").outputs[0].metrics
    assert same["snr_db"].value == np.inf and same["cosine_similarity"].value == 1.0


# ---------------------------------------------------------------- the outside-model contract at check's default samples


@pytest.mark.slow
@pytest.mark.parametrize("name", ["FCOS head (per-level Scale, top-k, no NMS)", "VQ-VAE codebook (argmin)"])
def test_fcos_and_vqvae_fail_at_checks_default_sample_count_on_a_true_fp16_problem(tmp_path, name):
    """The contract (tests/corpus/test_outside3.py: check_holds) runs on 2 samples: 16 doubles each model's time
    (the 16 fast round-6 models: 65 s -> 131 s on 2 shared cores). At check's default 16 samples these two FAIL
    on fp16 flipping near-tied picks (FCOS's top-k boxes, VQ-VAE's nearest codes): measured here, the package
    in fp16 is off PyTorch by more than the 30 dB bound, while the float32 conversion is faithful."""
    import dataclasses

    from devicefit import interp
    from devicefit.check import CheckOptions
    from devicefit.check.sources import load_dataset
    from devicefit.check.types import DEFAULT_GENERATED_SAMPLES
    from devicefit.sources import load_source
    from tests.corpus.outside6 import OUTSIDE6
    from tests.corpus.test_outside3 import FIDELITY, STORAGE, _worst_error, check_holds, spec_of

    model = dataclasses.replace(next(m for m in OUTSIDE6 if m.name == name), numerics="fail")
    samples = DEFAULT_GENERATED_SAMPLES
    errors = check_holds(model, tmp_path, fail_names_place=True, samples=samples)
    assert errors["fidelity"][0] < FIDELITY, errors
    source = load_source(spec_of(model))
    dataset = load_dataset(source, CheckOptions(model=spec_of(model), samples=samples))
    fp16, output = _worst_error(
        source, dataset, interp.load(str(tmp_path / "out" / "model.mlpackage")), "fp16"
    )
    assert fp16 > STORAGE, (fp16, output)
