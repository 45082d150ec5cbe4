"""The terminal summary shows the Neural Engine prediction and the latency lower bounds."""

from __future__ import annotations

import re


def _render(report, width: int = 200) -> str:
    from rich.console import Console

    from devicefit.report.terminal import render_terminal

    console = Console(record=True, width=width, color_system=None)
    render_terminal(report, console)
    return console.export_text()


def test_terminal_has_neural_engine_and_latency(demo_report):
    text = _render(demo_report)
    assert "neural engine" in text and "PASS" in text
    assert "neural engine (predicted, not measured): 0 of 8 ops (0%)" in text
    assert "not a measurement" in text
    assert "at best" in text and "on iPhone 12 (Neural Engine)" in text
    assert "memory-bound" in text or "TOPS" in text  # the key assumption is shown


def test_terminal_lists_top_reasons(demo_report):
    import copy

    report = copy.deepcopy(demo_report)
    reason = {
        "rule": "ANE-TOPK", "title": "topk", "severity": "fallback", "scope": "op", "ops": 2,
        "flops_share": 0.1, "reason": "topk runs on the CPU [P]", "fix": "move topk out", "source": "x",
    }  # fmt: skip
    report["ane"]["reasons"] = [reason] * 4
    text = _render(report)
    # where first when known (tests/report/test_ane_findings_lead_with_module.py), the rule id after the fix
    assert text.count("topk runs on the CPU [P]; fix: move topk out [ANE-TOPK: 2 ops, 10% of FLOPs]") == 3
    reason["where"] = ["head.topk (TopK) at net.py:9 (topk_0)"]
    text = _render(report)
    assert text.count("head.topk (TopK) at net.py:9 (topk_0) (+1 more): topk runs on the CPU [P]; fix:") == 3


def test_failed_frontend_with_an_empty_error_renders(demo_report):
    import copy

    report = copy.deepcopy(demo_report)
    report["convert"]["frontends"] = [
        {"name": "torchscript", "status": "converted", "error": None, "seconds": 0.3},
        {"name": "torch.export", "status": "failed", "error": "", "seconds": 0.1},
    ]
    text = _render(report)
    assert "torch.export failed ()" in text


def test_terminal_has_legend_io_data_and_pytorch_names(demo_report):
    text = _render(demo_report)
    assert "PASS: met its bound" in text  # every verdict marker shown is explained
    assert "inputs: image fp32 1x1x8x8 · outputs: logits fp16 1x10" in text
    assert f"on {demo_report['data']['origin']}, {demo_report['data']['samples']} samples" in text
    assert "while running the top module (DigitsCNN) at" in text and "demo.py:" in text


def test_terminal_partial_bounds_are_marked_not_compared(demo_report):
    text = _render(demo_report)
    partial = [line for line in text.splitlines() if "iPhone 15 Pro" in line and "│" in line]
    assert partial and re.search(r"\(\d[\d.]* \w+ NE\)\*", partial[0])  # parenthesised, footnote mark
    assert "not comparable" in text


def test_terminal_flexible_inputs_show_accepted_shapes(flexible_report):
    text = _render(flexible_report)
    assert "(accepts 1x3x16x16 | 1x3x24x24)" in text


def test_fp16_findings_lead_with_the_pytorch_module(demo_report):
    """Divergence / overflow findings name the PyTorch module first, the MIL op in parentheses."""
    import copy

    report = copy.deepcopy(demo_report)
    d = report["numerics"]["divergence"]
    conv = next(o for o in d["per_op"] if o["op_type"] == "conv")
    assert conv["origin"]["module_type"] == "Conv2d" and conv["where"].endswith(f"({conv['op']})")
    overflowing = {**conv, "overflow": 3, "nonfinite": 0}
    d["overflow"] = [overflowing]
    d["first_divergent"] = overflowing
    text = _render(report)
    assert f"{conv['where']} [conv]: fp16 overflow, 3 values beyond fp16's ±65504; keep it in fp32" in text
    assert f"{conv['where']} [conv]: fp16 first diverges here" in text
    d["underflow"] = [{**conv, "underflow": 2}]
    report["verdicts"]["numerics"]["status"] = "pass"
    text = _render(report)
    assert f"{conv['where']} [conv]: fp16 underflow, 2 values flushed to zero; harmless here" in text


def test_unsupported_ops_lead_with_where_they_are(failed_report):
    """The terminal table led with the aten op; the page (and every other finding) leads with the source."""
    text = _render(failed_report)
    header = next(line for line in text.splitlines() if "what to do" in line and "count" in line)
    assert header.index("where") < header.index("module") < header.index(" op ")
