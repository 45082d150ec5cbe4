"""Search on the demo model with digits, budgets, fp16 repair, interruption, the CLI."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch

from devicefit import compress, demo, interp
from devicefit.cli import main as cli_main
from devicefit.compress.budget import parse_budget
from devicefit.compress.holdout import split_samples
from devicefit.errors import InputError
from tests.helpers import convert

_demo: dict[str, object] = {}


def demo_fp32():
    if "ml" not in _demo:
        _demo["ml"] = convert(
            demo.load_module(), torch.zeros(1, 1, 8, 8), target="iOS18", input_names=["image"]
        )
    return _demo["ml"]


def accuracy_of(package, feeds, labels) -> float:
    prog = interp.load(package)
    name = prog.outputs[0].name
    preds = [int(np.argmax(prog.run(f, precision="fp16")[name])) for f in feeds]
    return float(np.mean(np.array(preds) == labels))


def test_search_meets_accuracy_budget_remeasured_from_written_package(tmp_path):
    data = demo.held_out(150)
    result = compress.search(
        demo_fp32(),
        data.feeds,
        compress.SearchOptions("accuracy>=-0.5%", min_elements=64),
        labels=data.labels,
    )
    assert result.met and result.heldout_met
    assert result.chosen.bytes < 0.5 * result.base_bytes  # mostly 4-bit
    path = result.save(tmp_path / "small.mlpackage")
    # the search saw only the calibration part; the held-out part verifies the written package
    cal, held = split_samples(len(data.feeds), 0.25, 0)
    assert (result.calibration_samples, result.heldout_samples) == (len(cal), len(held))
    pick = lambda idx: ([data.feeds[i] for i in idx], data.labels[idx])  # noqa: E731
    measured = accuracy_of(str(path), *pick(cal))
    assert measured >= accuracy_of(demo_fp32(), *pick(cal)) - 0.005 - 1e-9
    assert measured == pytest.approx(result.chosen.metric)
    held_measured = accuracy_of(str(path), *pick(held))
    assert held_measured == pytest.approx(result.heldout_metric)
    assert held_measured >= accuracy_of(demo_fp32(), *pick(held)) - 0.005 - 1e-9
    ops = interp.load(str(path)).op_counts
    assert ops.get("constexpr_lut_to_dense", 0) >= 2
    front = result.front
    assert all(a.bytes < b.bytes and a.metric < b.metric for a, b in itertools.pairwise(front))


def test_cosine_budget_mixes_precisions_and_unmeetable_budget_reports_best():
    data = demo.held_out(60)
    strict = compress.search(
        demo_fp32(), data.feeds, compress.SearchOptions("cosine>=0.9995", bits=(2, 4, 8), min_elements=64)
    )
    assert strict.met and strict.chosen.metric - strict.chosen.margin >= 0.9995
    assert strict.verified_metric == pytest.approx(strict.chosen.metric, abs=1e-9)
    assert len(set(strict.chosen.assignment.values())) >= 2  # mixes precisions
    impossible = compress.search(
        demo_fp32(), data.feeds, compress.SearchOptions("accuracy>=100%", min_elements=64), labels=data.labels
    )
    assert not impossible.met and impossible.repair is not None and not impossible.repair.passed
    assert impossible.chosen.metric == max(c.metric for c in impossible.candidates)


@pytest.mark.parametrize(
    "text, message",
    [
        ("accuracy>=+1%", "gain"),
        ("cosine>=1.5", r"\(0, 1\]"),
        ("psnr>=-3", "absolute"),
        ("latency<=3", "bad budget"),
        ("f1>=0.9", "unknown budget metric"),
        ("cosine>=99%", "absolute"),
    ],
)
def test_bad_budgets_rejected(text, message):
    with pytest.raises(InputError, match=message) as info:
        parse_budget(text)
    assert "\n" not in str(info.value)


def test_accuracy_budget_without_labels_rejected():
    with pytest.raises(InputError, match="labelled data"):
        compress.search(demo_fp32(), demo.held_out(4).feeds, compress.SearchOptions("accuracy>=-1%"))


class Overflow(torch.nn.Module):
    """fp16 overflows in exactly one spot: (1e3 * h)^2 exceeds 65504, then is scaled back down."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 16)
        self.b = torch.nn.Linear(16, 8)

    def forward(self, x):
        h = self.a(x)
        big = torch.square(h * 1e3)
        return self.b(torch.relu(h) + big * 1e-6)


def test_fp16_repair_keeps_exactly_the_overflow_region_fp32():
    torch.manual_seed(0)
    ml = convert(Overflow().eval(), torch.randn(1, 16), target="iOS18")
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(8)]
    repair = compress.repair_fp16(ml, feeds, parse_budget("cosine>=0.999"))
    assert repair.fp16_metric < 0.999 and repair.passed and repair.repaired_metric >= 0.999
    # torch.square traces to mul(x, x), named after the variable: "big". The region is that op and the
    # rescale by 1e-6 right after it (its input is the overflowing value).
    prog = interp.load(ml)
    steps = [s.name for s in prog.plan.block.steps]
    big = steps.index("big")
    assert "big" in repair.fp32_ops
    assert set(repair.fp32_ops) <= {steps[big], steps[big + 2]}, (repair.fp32_ops, steps)
    assert repair.first_divergent == "big"
    opts = repair.convert_options()
    assert opts.precision == "mixed" and opts.fp32_ops == repair.fp32_ops


def test_interrupted_search_leaves_no_package(tmp_path, monkeypatch):
    from devicefit.compress import sensitivity

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sensitivity.Sensitivity, "__init__", boom)
    target = tmp_path / "out.mlpackage"
    code = cli_main(
        [
            "compress",
            "--budget",
            "cosine>=0.99",
            "--samples",
            "5",
            "--min-elements",
            "64",
            "-o",
            str(target),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 130
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_package_json_html_and_yaml(tmp_path):
    import coremltools.optimize.coreml as cto

    paths = {k: tmp_path / f"r.{k}" for k in ("mlpackage", "json", "html", "yaml")}
    code = cli_main(
        [
            "compress",
            "--budget",
            "accuracy>=-1%",
            "--samples",
            "60",
            "--min-elements",
            "64",
            "--bits",
            "4,8",
            "-o",
            str(paths["mlpackage"]),
            "--json",
            str(paths["json"]),
            "--html",
            str(paths["html"]),
            "--plan",
            str(paths["yaml"]),
        ]
    )
    assert code == 0
    report = json.loads(paths["json"].read_text())
    assert report["met"] and report["pareto_front"] and report["chosen"]["bytes"] < report["fp16_bytes"]
    # the demo CNN flattens to a hard-coded batch 1: stacking is refused, vmap evaluates the samples
    assert report["batching"]["mode"] == "vmap" and "refused stack" in report["batching"]["reason"]
    assert {"batching probe", "sensitivity", "search"} <= set(report["timings"])
    html = paths["html"].read_text()
    assert "<svg" in html
    assert (
        "How the search ran" in html and "sensitivity" in html and "Candidates evaluated: <b>vmap</b>" in html
    )
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # self-contained: nothing fetched
    assert cto.OptimizationConfig.from_yaml(str(paths["yaml"])).op_name_configs
    assert interp.load(str(paths["mlpackage"])).op_counts.get("constexpr_lut_to_dense", 0) >= 1
    again = cli_main(["compress", "--budget", "accuracy>=-1%", "-o", str(paths["mlpackage"])])
    assert again == 2  # exists, no --force


def test_no_weight_over_the_threshold_names_the_option_for_library_and_cli_users():
    data = demo.held_out(4)
    with pytest.raises(InputError) as e:
        compress.search(demo_fp32(), data.feeds, compress.SearchOptions("cosine>=0.99", min_elements=10**9))
    assert "min_elements" in str(e.value) and "--min-elements" in str(e.value)
