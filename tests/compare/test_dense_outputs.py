"""Dense outputs (segmentation N x C x H x W, token tagging N x L x C): top-k per position over the class axis.

The class axis comes from the model's head op (a conv head: axis 1; a linear head: the last axis), never
from the output's shape alone (docs/metrics.md).
"""

from __future__ import annotations

import pytest

from tests.compare.dense_models import FLIPPING, SEGMENTATION, TAGGER


def _check(tmp_path, text: str, name: str, **kw):
    from devicefit.check import CheckOptions, run_check

    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return run_check(CheckOptions(model=str(path), samples=4, **kw))


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory):
    return _check(tmp_path_factory.mktemp("seg"), SEGMENTATION, "seg")


@pytest.fixture(scope="module")
def flipping(tmp_path_factory):
    return _check(tmp_path_factory.mktemp("flip"), FLIPPING, "flip", repair=False)


def test_segmentation_agreement_is_per_pixel_over_the_class_axis(segmentation):
    r = segmentation
    (out,) = r.fp16.outputs
    top1 = out.metrics["top1_agreement"]
    # every pixel of every sample is one comparison (4 samples x 32 x 32), classes on axis 1 (6 of them)
    assert top1.details["class_axis"] == 1
    assert top1.details["samples"] == 4 * 32 * 32
    assert top1.details["positions_per_sample"] == 32 * 32
    assert "conv head" in top1.details["class_axis_evidence"]
    assert top1.value == 1.0 and out.metrics["top5_agreement"].details["class_axis"] == 1
    assert out.metrics["argmax_iou"].value == 1.0
    assert r.verdicts["numerics"].status != "fail", r.verdicts["numerics"].reason


def test_fp16_that_flips_pixels_fails_on_pixel_agreement(flipping):
    r = flipping
    verdict = r.verdicts["numerics"]
    assert verdict.status == "fail"
    assert "top1 agreement" in verdict.reason and "per position (class axis 1)" in verdict.reason
    compute = r.questions["compute_precision"].comparison
    metrics = compute.outputs[0].metrics
    # SNR, cosine and relative error stay within the fp16 bounds: only the per-pixel classes catch it
    for name in ("snr_db", "cosine_similarity", "max_rel_error"):
        assert metrics[name].passed, (name, metrics[name].value)
    top1 = metrics["top1_agreement"]
    assert top1.details["class_axis"] == 1 and top1.details["samples"] == 4 * 16 * 16
    assert top1.value < 0.97
    assert metrics["argmax_iou"].value < 0.95


def test_user_can_declare_an_output_not_class_scores(tmp_path):
    r = _check(tmp_path, FLIPPING, "flip", repair=False, class_axes={"output": None})
    metrics = r.fp16.outputs[0].metrics
    assert "top1_agreement" not in metrics and "argmax_iou" not in metrics


def test_unknown_output_in_class_axis_option_is_bad_input(tmp_path):
    from devicefit.errors import InputError

    with pytest.raises(InputError, match=r"--class-axis names output 'logits'.*its outputs: output"):
        _check(tmp_path, FLIPPING, "flip", repair=False, class_axes={"logits": 1})


def test_token_classification_is_per_token_over_the_last_axis(tmp_path):
    r = _check(tmp_path, TAGGER, "tagger")
    (out,) = r.fp16.outputs
    top1 = out.metrics["top1_agreement"]
    assert top1.details["class_axis"] == 2
    assert top1.details["samples"] == 4 * 12
    assert "linear head" in top1.details["class_axis_evidence"]
    assert top1.value == 1.0
    assert r.verdicts["numerics"].status != "fail", r.verdicts["numerics"].reason


@pytest.mark.parametrize("spec", ["logits", "logits:x", ":1"])
def test_malformed_class_axis_option_exits_2(spec, capsys):
    from devicefit.cli import main

    assert main(["check", "--class-axis", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--class-axis" in err, err


def test_argmax_iou_is_in_the_report_summary_and_gateable(flipping):
    from devicefit.report import gates
    from devicefit.report.schema import build_report

    report = build_report(flipping)
    assert report["summary"]["fp16.argmax_iou"] < 0.95
    tripped = gates.evaluate([gates.parse_gate("fp16.argmax_iou<0.95")], report["summary"])
    assert len(tripped) == 1


def test_the_fp16_fix_for_flipped_pixels_is_found_and_verified(tmp_path):
    # fp16 already meets the repair's first cosine bound (0.9999), so the first repair offered no op; the
    # repair now tightens its bound until the repaired model passes the check's own per-pixel gate
    result = _check(tmp_path, FLIPPING, "flip")
    fix = result.repair
    assert fix is not None and fix.ops, "no fix offered"
    assert fix.verified is not None and fix.verified.passed, fix.verified.headline()
    assert fix.threshold > 0.9995 and any("tightened" in n for n in fix.notes)
    assert any(o.origin and o.origin.startswith("features (Conv2d)") for o in fix.ops)
    assert "; fix: keep" in str(result.verdicts["numerics"])


def test_a_fix_without_a_pytorch_reference_is_verified_against_the_fp32_run_at_every_bound(tmp_path):
    # the first bound is refused here; the bounds tried after it were verified as "vs pytorch" against the
    # package's fp32 run once that run had been computed
    import numpy as np

    from devicefit.check.repair import fp16_fix
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    path = tmp_path / "flip.py"
    path.write_text(FLIPPING)
    source = load_source(str(path))
    fp32 = convert(source, ConvertOptions(precision="fp32")).mlmodel
    rng = np.random.default_rng(0)
    name = source.input_specs[0].name
    feeds = [{name: rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    fix = fp16_fix(fp32, feeds, None, None, source)
    assert any("tightened" in n for n in fix.notes)  # more than one bound was tried
    assert (
        fix.verified is not None
        and fix.verified.reference == "interp-fp32"
        and fix.verified.name == "compute"
    )
