"""check's verdicts: which outputs hold class scores, computed ids, exact-match columns, the JSON schema.

Each test reproduces a wrong verdict or a missing column first (the failing case is in its docstring).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- linear heads that make embeddings, not scores


class _Embedder(torch.nn.Module):
    """A backbone with the heads a contrastive / retrieval model returns beside (or instead of) class scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU())
        self.projection_head = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)
        )
        self.mid = torch.nn.Linear(64, 48)
        self.classifier = torch.nn.Linear(48, 10)
        self.layers = torch.nn.Sequential(torch.nn.Linear(64, 24))

    def forward(self, x):
        h = self.backbone(x)
        hidden = self.mid(h)  # returned, and read by the classifier: a hidden state
        z = self.layers(h)
        return (
            self.projection_head(h),  # SimCLR's projection: named as one
            F.normalize(z, dim=-1),  # an L2-normalised embedding out of an unnamed layer
            z / z.norm(dim=-1, keepdim=True),  # CLIP's spelling of it
            hidden,
            self.classifier(hidden),  # class scores
            z,  # an unnamed layer's raw output: the shape rule (last axis) stands
        )


@pytest.fixture(scope="module")
def embedder_heads():
    from devicefit import interp
    from devicefit.compare.class_axis import head_axes
    from devicefit.convert.provenance import collect
    from tests.helpers import convert

    mlmodel = convert(_Embedder(), torch.randn(2, 16))
    program = interp.load(mlmodel)
    names = [o.name for o in program.outputs]
    return names, head_axes(program, collect(mlmodel)), head_axes(program)


def test_projection_normalised_and_hidden_linear_outputs_get_no_topk(embedder_heads):
    """Each of the first four outputs leaves a linear op and got "linear head" top-k over its embedding units
    (the 32-unit SimCLR projection, the L2-normalised and the hidden state alike)."""
    from devicefit.compare.class_axis import decide

    names, heads, _ = embedder_heads
    projection, normalised, clip_style, hidden = (heads[n] for n in names[:4])
    assert projection.axis is None and "projection_head" in projection.evidence, projection
    assert normalised.axis is None and "L2-normalised" in normalised.evidence, normalised
    assert clip_style.axis is None and "L2-normalised" in clip_style.evidence, clip_style
    assert hidden.axis is None and "also feeds linear" in hidden.evidence, hidden
    for name in names[:4]:
        assert decide(name, np.zeros((4, 32), np.float32), heads[name]).axis is None
    # the same outputs under a name that says scores keep top-k (the user's naming wins over the op's)
    assert decide("logits", np.zeros((4, 32), np.float32), projection).axis == 1


def test_a_classifier_and_an_unnamed_layer_keep_topk(embedder_heads):
    names, heads, bare = embedder_heads
    scores, raw = heads[names[4]], heads[names[5]]
    assert scores.axis == 1 and "classifier (Linear)" in scores.evidence, scores
    assert raw.axis == 1, raw
    # without the package's module names the op rules still hold (a Core ML source without provenance)
    assert [bare[n].axis for n in names] == [1, None, None, None, 1, 1], bare


def test_module_names_say_scores_or_features():
    from devicefit.compare.head_evidence import module_says

    scores = (
        "lm_head",
        "classifier.1",
        "heads.head",
        "fc",
        "gpt_neox.embed_out",
        "model.proj_out",
        "hidden2tag",
        "class_embed.5",  # Deformable DETR's per-decoder-layer class logits (not an embedding)
    )
    assert [module_says(p) for p in scores] == [True] * len(scores)
    assert [
        module_says(p) for p in ("projection_head.2", "visual_projection", "encoder.fc_mu", "bbox_embed.5")
    ] == [False] * 4
    assert module_says("layers.3") is None and module_says("") is None


# ---------------------------------------------------------------- integer / boolean outputs in the report

LABELS = """
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 12)

    def forward(self, x):
        y = self.fc(x)
        return y.argmax(-1), y > 0  # the predicted class and the mask of positive scores: no float output


def make_model():
    return Tagger().eval(), torch.randn(4, 16)
"""


@pytest.fixture(scope="module")
def labels_report(tmp_path_factory):
    from devicefit.check import CheckOptions, run_check
    from devicefit.report.schema import build_report, to_json

    path = tmp_path_factory.mktemp("tagger") / "tagger.py"
    path.write_text(LABELS)
    result = run_check(CheckOptions(model=str(path), samples=4, repair=False, devices=["iphone-12"]))
    return result, to_json(build_report(result))


def test_a_report_without_float_metrics_writes_no_null_and_gates_say_not_measured(labels_report):
    """compute_precision.snr_db (and cosine, max relative error) were written as null with no output holding
    them; null is NaN in the schema, so ``--fail-on 'compute_precision.snr_db<30'`` said "is NaN" and the
    terminal showed nan."""
    import json

    from devicefit.report.gates import evaluate, parse_gate

    result, text = labels_report
    report = json.loads(text)
    assert result.verdicts["numerics"].status == "pass", result.verdicts["numerics"].reason
    summary = report["summary"]
    assert [k for k, v in summary.items() if v is None and k.split(".")[0] != "memory"] == [], summary
    assert summary["fp16.exact_match"] >= 0.99 and "fp16.snr_db" not in summary
    assert "compute_precision.snr_db" not in summary
    (failure,) = evaluate([parse_gate("fp16.snr_db<30")], summary)
    assert "was not measured" in failure.reason, failure.reason
    # the integer outputs' own metric is a gate key (it was refused as unknown)
    assert evaluate([parse_gate("fp16.exact_match<0.99")], summary) == []


def test_the_terminal_numerics_table_has_an_exact_match_column(labels_report):
    """The mask's exact match (in the JSON and the HTML) had no column: the table read '-' in every cell."""
    import json
    import re

    from rich.console import Console

    from devicefit.report.terminal import render_terminal

    console = Console(record=True, width=200, color_system=None)
    render_terminal(json.loads(labels_report[1]), console)
    text = console.export_text()
    assert "exact match" in text and " nan " not in text
    row = next(line for line in text.splitlines() if "fp16 vs pytorch" in line)
    assert re.search(r"\b(1|0\.99\d*)\b", row), row


# ---------------------------------------------------------------- ids a model computes from its integer inputs

LAYOUT = """
import torch
from torch import nn


class Layout(nn.Module):
    # LayoutLM's 2-D position embeddings: each box corner, and the box's width and height, index a table
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.words, self.x, self.y = nn.Embedding(100, 8), nn.Embedding(1024, 8), nn.Embedding(1024, 8)
        self.h, self.w = nn.Embedding(1024, 8), nn.Embedding(1024, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, input_ids, bbox):
        e = self.words(input_ids) + self.x(bbox[:, :, 0]) + self.y(bbox[:, :, 1]) + self.x(bbox[:, :, 2])
        e = e + self.y(bbox[:, :, 3]) + self.h(IDS_H) + self.w(bbox[:, :, 2] - bbox[:, :, 0])
        return self.head(torch.tanh(e))


def make_model():
    torch.manual_seed(1)
    x0, y0 = torch.randint(0, 500, (1, 12, 1)), torch.randint(0, 500, (1, 12, 1))
    wide, high = torch.randint(1, 400, (1, 12, 1)), torch.randint(1, 100, (1, 12, 1))
    bbox = torch.cat([x0, y0, x0 + wide, y0 + high], -1)
    return Layout().eval(), (torch.randint(0, 100, (1, 12)), bbox)
"""


def _layout_dataset(tmp_path, heights: str):
    from devicefit.check import CheckOptions
    from devicefit.check.sources import load_dataset
    from devicefit.sources import load_source

    path = tmp_path / "layout.py"
    path.write_text(LAYOUT.replace("IDS_H", heights))
    return load_dataset(load_source(str(path)), CheckOptions(model=str(path)))


def test_box_widths_and_heights_the_model_computes_stay_inside_their_tables(tmp_path):
    """bbox columns drawn independently made x1 - x0 negative: PyTorch refused 15 of 16 generated samples and
    the verdict was read off the example alone."""
    data = _layout_dataset(tmp_path, "bbox[:, :, 3] - bbox[:, :, 1]")
    assert len(data.feeds) == 16, data.notes
    boxes = np.stack([f["bbox"] for f in data.feeds]).astype(np.int64)
    for right, left in ((2, 0), (3, 1)):
        span = boxes[..., right] - boxes[..., left]
        assert span.min() >= 0 and span.max() <= 1023
    assert len(np.unique(boxes[1:, ..., 0])) > 50  # still varied, not one box repeated
    note = " ".join(data.notes)
    assert "'bbox'" in note and "column 2 minus column 0 indexes a table of 1024 rows" in note, note


def test_ids_computed_another_way_name_the_input_and_data(tmp_path):
    """Ids no column or difference explains (a box's area): the refusal note names the integer input."""
    data = _layout_dataset(
        tmp_path, "(bbox[:, :, 3] - bbox[:, :, 1]) * (bbox[:, :, 2] - bbox[:, :, 0]) // 64"
    )
    note = next(n for n in data.notes if "refused by the PyTorch model" in n)
    assert "'bbox'" in note and "--data" in note, note
    assert "IndexError" in note and "layout.py:" in note, note  # where PyTorch refused them: the user's line


# ---------------------------------------------------------------- NaN / inf in PyTorch's own outputs


def test_nan_and_inf_where_pytorch_has_them_are_not_errors():
    """log(scores) is NaN where a score is negative in PyTorch itself; NaN - NaN made every metric NaN and check
    said "conversion problem: SNR NaN dB" for a converted model that matched PyTorch."""
    from devicefit.compare.validate import compare

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((8, 64))
    with np.errstate(invalid="ignore"):
        ref = np.log(np.where(scores > -0.5, scores + 1.0, -1.0))  # NaN where scores <= -0.5
    close = ref * (1 + 1e-6 * rng.standard_normal(ref.shape))
    result = compare("fp32", {"out": ref}, {"out": close}, "pytorch")
    assert result.passed, result.headline()
    assert result.outputs[0].metrics["exact_match"].value == 1.0
    assert any("in PyTorch itself (a mask" in n for n in result.notes), result.notes
    # a NaN where PyTorch is finite is still an error
    broken = close.copy()
    broken[0, np.isfinite(ref[0]).argmax()] = np.nan
    assert not compare("fp32", {"out": ref}, {"out": broken}, "pytorch").passed


@pytest.mark.parametrize("fill", [-np.inf, -3.4e38, -32752.0, -32752.0 + 0.7])
def test_masked_logits_match_however_the_package_holds_minus_infinity(fill):
    """masked_fill(mask, -inf): coremltools stores -inf as -3.4e38 and devicefit's fp16 package as -32752; each
    read as an error of 3.4e38 against PyTorch's -inf (SNR NaN, a conversion FAIL)."""
    from devicefit.compare.validate import compare

    rng = np.random.default_rng(1)
    scores = rng.standard_normal((16, 10))
    masked = scores < -0.3
    ref = np.where(masked, -np.inf, scores)
    cand = np.where(masked, fill, scores + 1e-7)
    result = compare("fp32", {"logits": ref}, {"logits": cand}, "pytorch")
    assert result.passed, result.headline()
    assert result.outputs[0].metrics["top1_agreement"].value == 1.0
    # a mask flipped on 5% of the positions is a wrong mask (the exact-match bound of a mask output)
    flipped = cand.copy()
    flipped[:8, 0] = np.where(masked[:8, 0], scores[:8, 0], fill)
    wrong = compare("fp32", {"logits": ref}, {"logits": flipped}, "pytorch")
    assert not wrong.passed and wrong.outputs[0].metrics["exact_match"].value < 1.0, wrong.headline()


MASKED = """
import torch
from torch import nn


class Masked(nn.Module):
    # scores below a threshold masked out with -inf (as attention logits are), returned as the output
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.fc(x)
        return y.masked_fill(y < -0.3, float("-inf"))


def make_model():
    torch.manual_seed(3)
    return Masked().eval(), torch.randn(4, 16)
"""


def test_check_passes_an_exact_conversion_of_masked_logits(tmp_path):
    """check said "conversion problem: ... SNR NaN dB" (-inf vs Core ML's -3.4e38), then, that fixed, "weight
    storage loss: ... exact match 0.6750" (-inf vs the fp16 package's -32752)."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "masked.py"
    path.write_text(MASKED)
    result = run_check(CheckOptions(model=str(path), samples=8, repair=False, devices=["iphone-12"]))
    assert result.verdicts["numerics"].status == "pass", result.verdicts["numerics"].reason
    assert result.questions["conversion_fidelity"].comparison.worst("snr_db") > 60.0
    assert any("in PyTorch itself (a mask" in w for w in result.warnings), result.warnings


# ---------------------------------------------------------------- a failing integer output names where it is made

ROUNDED = """
import torch
from torch import nn


class Quantised(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return torch.round(self.fc(x) * 100).long()  # scores in hundredths, as integers


def make_model():
    torch.manual_seed(3)
    return Quantised().eval(), torch.randn(4, 16)
"""


def test_a_failing_integer_output_names_the_op_and_line_that_makes_it(tmp_path):
    """Rounded scores flipping by one under fp16 read "fp16 compute precision loss (conversion exact match
    1.0000, ...)": no PyTorch module, no line, nothing to do (no float op diverges)."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "quantised.py"
    path.write_text(ROUNDED)
    result = run_check(CheckOptions(model=str(path), repair=False, devices=["iphone-12"]))
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail" and verdict.reason.startswith("fp16 compute precision loss; "), (
        verdict.reason
    )
    assert "computed by round at the top module (Quantised) at " in verdict.reason, verdict.reason
    assert "quantised.py:13" in verdict.reason and "in app code" in verdict.reason, verdict.reason


SCALED = """
import torch
from torch import nn


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(x) * 1e5  # logits in the 1e5 range: the scale is past fp16's +-65504


def make_model():
    return Scaled().eval(), torch.randn(4, 16)
"""


def test_a_scale_past_fp16_range_says_the_fp16_safe_constant_moved_it(tmp_path):
    """The fp16-safe pass stored the 1e5 scale as 32752 and the verdict said only "the weights or constants that
    line reads lose too much when stored", with nothing about which constant or why."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "scaled.py"
    path.write_text(SCALED)
    result = run_check(CheckOptions(model=str(path), samples=4, repair=False, devices=["iphone-12"]))
    reason = result.verdicts["numerics"].reason
    assert reason.startswith("weight storage loss") and "scaled.py:13" in reason, reason
    assert "100000 -> 32752" in reason and "not for a scale" in reason and "--precision fp32" in reason, (
        reason
    )


# ---------------------------------------------------------------- an output that is an input

PASSTHROUGH = """
import torch
from torch import nn


class Passthrough(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return x, self.fc(x)  # the input handed back beside the scores


def make_model():
    return Passthrough().eval(), torch.randn(4, 16)
"""


def test_the_flat_module_hands_back_a_view_of_an_input_not_the_input():
    import torch

    from devicefit.sources.spec import _make_flat_module

    flat = _make_flat_module(lambda x: (x, x + 1), ["x"], by_keyword=False)
    x = torch.arange(4.0)
    same, other = flat(x)
    assert same is not x and torch.equal(same, x) and torch.equal(other, x + 1)


@pytest.mark.slow  # a whole check (~3 s); the wrapper's part is tested above
def test_an_output_that_is_an_input_converts_and_hands_the_input_back(tmp_path):
    """Both frontends failed with coremltools' assertion alone ("Main block's input name, 'x', is different from
    its corresponding var's name, 'output_0'"); then check said what to do. The input handed back now converts
    (the traced wrapper returns a view of it), and the package returns the input unchanged."""
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / "passthrough.py"
    path.write_text(PASSTHROUGH)
    result = run_check(CheckOptions(model=str(path), repair=False, devices=["iphone-12"]))
    assert result.verdicts["convert"].status == "pass", result.verdicts["convert"].reason
    assert result.verdicts["numerics"].status in ("pass", "warn"), result.verdicts["numerics"].reason


def test_the_returned_input_message_stays_for_a_source_that_still_hits_the_assertion():
    """A source devicefit does not wrap (a user's ExportedProgram) can still hit coremltools' assertion: the
    verdict then says what to do instead of quoting it."""
    from devicefit.check.verdicts import _RETURNED_INPUT

    error = (
        "torchscript: failed (AssertionError: Main block's input name, 'x', is different from its corresponding "
        "var's name, 'output_0'.)"
    )
    assert _RETURNED_INPUT.search(error).group(1) == "x"
