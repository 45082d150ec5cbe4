"""Neural Engine lint: every rule fires on a model that has its pattern and stays quiet on one that does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from devicefit.analyze import ane_lint
from devicefit.analyze.ane_rules import OP_RULES, PROGRAM_RULES, ProgramFacts
from tests.helpers import convert

X4 = torch.randn(1, 3, 16, 16)


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _lstm() -> nn.Module:
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8)

        def forward(self, x):
            return self.rnn(x)[0]

    return M()


# rule id -> (positive (module, example), negative (module, example))
CASES = {
    "ANE-RNN": ((_lstm(), torch.randn(5, 1, 4)), (nn.Linear(4, 8), torch.randn(5, 1, 4))),
    "ANE-GATHER": ((nn.Embedding(10, 4), torch.tensor([[1, 2, 3]])), (nn.Linear(3, 4), torch.randn(1, 3))),
    "ANE-TOPK": (
        (Fn(lambda x: torch.topk(x, 2)[0]), torch.randn(1, 8)),
        (Fn(lambda x: x * 2), torch.randn(1, 8)),
    ),
    "ANE-DILATION": ((nn.Conv2d(3, 4, 3, dilation=2), X4), (nn.Conv2d(3, 4, 3), X4)),
    "ANE-POOL": ((nn.MaxPool2d(15, stride=1), X4), (nn.MaxPool2d(2), X4)),
    "ANE-UPSAMPLE": ((nn.Upsample(scale_factor=4.0), X4), (nn.Upsample(scale_factor=2.0), X4)),
    "ANE-DIM16K": ((nn.Linear(4, 16400), torch.randn(1, 4)), (nn.Linear(4, 64), torch.randn(1, 4))),
    "ANE-LASTAXIS1": (
        (Fn(lambda x: x.mean(dim=-1, keepdim=True)), X4),
        (Fn(lambda x: x.mean(dim=1, keepdim=True)), X4),
    ),
    "ANE-BROADCAST": (
        (Fn(lambda x, y: x * y), (torch.randn(1, 8, 4, 4), torch.randn(1, 8, 1, 1))),
        (Fn(lambda x, y: x * y), (torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4))),
    ),
}


def _lint(module: nn.Module, example, precision: str = "fp16", **kw) -> ane_lint.LintReport:
    return ane_lint.lint(convert(module, example, precision=precision, **kw))


def test_every_op_rule_has_a_case():
    assert {r.id for r in OP_RULES} - {"ANE-FP32", "ANE-RANK6"} == set(CASES)
    for rule in (*OP_RULES, *PROGRAM_RULES):
        assert rule.source and rule.fix and rule.severity in ("fallback", "maybe", "warning")


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_op_rule_fires_and_stays_quiet(rule_id):
    (pos, pos_x), (neg, neg_x) = CASES[rule_id]
    report = _lint(pos, pos_x)
    hits = [o for o in report.ops if any(f.rule == rule_id for f in o.findings)]
    assert hits, f"{rule_id} did not fire on {[o.op_type for o in report.ops]}"
    rule = next(r for r in OP_RULES if r.id == rule_id)
    expected = {"fallback": "fallback", "maybe": "maybe", "warning": hits[0].verdict}[rule.severity]
    assert hits[0].verdict == expected
    finding = next(f for f in hits[0].findings if f.rule == rule_id)
    assert finding.reason and finding.source == rule.source and finding.fix == rule.fix
    assert rule_id not in _lint(neg, neg_x).rules_fired()


def test_fp32_program_is_barred_and_fp16_is_not():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    fp32 = _lint(m, X4, precision="fp32")
    assert "ANE-FP32" in {f.rule for f in fp32.program}
    assert fp32.summary.ne_barred_by == ["ANE-FP32"] and fp32.summary.fallback_op_share == 1.0
    fp16 = _lint(m, X4)
    assert "ANE-FP32" not in fp16.rules_fired()
    assert fp16.summary.fallback_ops == 0 and fp16.summary.transitions == 0
    assert all(o.verdict_text == "likely on the Neural Engine" for o in fp16.ops)


def test_fp32_program_with_integer_outputs_is_still_barred():
    # argmax's int32 output must not hide that every float op computes in fp32
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x).argmax(1)

    fp32 = _lint(M(), X4, precision="fp32")
    assert fp32.summary.ne_barred_by == ["ANE-FP32"]
    assert fp32.summary.transitions == 0 and fp32.summary.fallback_op_share == 1.0
    assert "ANE-FP32" not in {f.rule for f in _lint(M(), X4).program}


def test_in_memory_weight_bytes_count_each_const_once_at_its_bit_width(ct, tmp_path):
    from devicefit.analyze.flops import resolve_function
    from devicefit.convert.merge import weight_bytes

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    ml = convert(net, torch.randn(1, 64), precision="fp16")
    opt = ct.optimize.coreml
    config = opt.OptimizationConfig(global_config=opt.OpPalettizerConfig(nbits=4, weight_threshold=0))
    pal = opt.palettize_weights(ml, config)
    path = tmp_path / "pal.mlpackage"
    pal.save(str(path))
    on_disk = weight_bytes(path)  # the weight file adds a small header per blob
    estimate = ane_lint._weight_bytes(resolve_function(pal), pal)
    assert 0.8 * on_disk <= estimate <= on_disk


def test_range_dim_input_flags_and_fixed_does_not(ct):
    m = nn.Linear(4, 4)
    shape = ct.Shape(shape=(1, ct.RangeDim(1, 8, default=2), 4))
    flex = _lint(m, torch.randn(1, 2, 4), inputs=[ct.TensorType(name="x", shape=shape, dtype=np.float32)])
    assert "ANE-RANGEDIM" in {f.rule for f in flex.program}
    assert "ANE-RANGEDIM" not in _lint(m, torch.randn(1, 2, 4)).rules_fired()


def test_model_over_1gb_bars_the_ne():
    m = nn.Linear(4, 4)
    big = ane_lint.lint(convert(m, torch.randn(1, 4), precision="fp16"), model_bytes=2 * 1024**3)
    assert big.summary.ne_barred_by == ["ANE-1GB"]
    assert "2.00 GiB" in big.program[0].reason  # one definition: 1 GiB = 1024**3 bytes
    under = ane_lint.lint(convert(m, torch.randn(1, 4), precision="fp16"), model_bytes=1024**3)
    assert "ANE-1GB" not in under.rules_fired()
    assert "ANE-1GB" not in _lint(m, torch.randn(1, 4)).rules_fired()


def _rank_program(rank: int):
    # Core ML's converter refuses rank 6 itself, so the pattern only exists in hand-built programs
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec((1, 32), dtype=types.fp16)])
    def prog(x):
        return mb.relu(x=mb.reshape(x=x, shape=[1] * (rank - 4) + [4, 2, 2, 2]))

    return prog


def test_rank6_rule():
    hit = ane_lint.lint(_rank_program(6))
    assert [o.op_type for o in hit.ops if o.verdict == "fallback"] == ["reshape", "relu"]
    assert "ANE-RANK6" not in ane_lint.lint(_rank_program(5)).rules_fired()


def _state_program(n: int):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from devicefit._lazy import coremltools

    ct = coremltools()

    @mb.program(
        input_specs=[mb.StateTensorSpec((1, n), dtype=types.fp16), mb.TensorSpec((1, n), dtype=types.fp16)],
        opset_version=ct.target.iOS18,
    )
    def prog(state, x):
        y = mb.add(x=mb.read_state(input=state), y=x)
        mb.coreml_update_state(state=state, value=y)
        return y

    return prog


def test_state_dims_not_multiple_of_32():
    assert "ANE-STATE32" in ane_lint.lint(_state_program(30)).rules_fired()
    assert "ANE-STATE32" not in ane_lint.lint(_state_program(32)).rules_fired()


def test_enumerated_over_128_rule_on_facts():
    rule = next(r for r in PROGRAM_RULES if r.id == "ANE-ENUM128")
    assert rule.check(ProgramFacts(None, 0, {"x": "enumerated"}, {"x": 129}))
    assert not rule.check(ProgramFacts(None, 0, {"x": "enumerated"}, {"x": 128}))


def test_summary_shares_and_transitions():
    # conv (NE) -> embedding-like gather (fallback) -> conv (NE): two transitions
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3)
            self.b = nn.Conv2d(8, 8, 3)

        def forward(self, x):
            y = self.a(x)
            y = torch.topk(y, 4, dim=-1)[0]
            return self.b(y)

    report = _lint(M(), X4)
    s = report.summary
    assert s.transitions == 2
    assert s.fallback_ops == 1 and 0 < s.fallback_op_share < 1
    assert s.fallback_flops < s.flops and s.fallback_flops_share < 0.5
    d = report.to_dict()
    json.dumps(d)
    assert "not a measurement" in d["disclaimer"]


def test_cli_lint_json(tmp_path, capsys):
    from devicefit.cli import main

    path = tmp_path / "m.mlpackage"
    convert(nn.Embedding(10, 4), torch.tensor([[1, 2]]), precision="fp16").save(str(path))
    out = tmp_path / "lint.json"
    assert main(["lint", str(path), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not a measurement" in printed and "likely fallback" in printed
    data = json.loads(out.read_text())
    assert any(f["rule"] == "ANE-GATHER" for o in data["ops"] for f in o["findings"])
    assert main(["lint", str(path), "--json", str(out)]) == 2  # exists, no --force


class _Embed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids).sum(1)  # EMB-LINE


def make_embed():
    return _Embed().eval(), (torch.randint(0, 50, (1, 6)),)


def test_cli_lint_at_80_columns_leads_with_the_module(tmp_path, capsys, monkeypatch):
    """The lint table names the PyTorch module and line, wraps by row at 80 columns, and gives each fix once."""
    from devicefit.cli import main
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    path = convert(load_source(f"{__file__}:make_embed"), ConvertOptions()).save(tmp_path / "e.mlpackage")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["lint", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines if line.startswith(("│", "┃"))) <= 80
    where = "".join(line.split("│")[2].strip() for line in lines if line.startswith("│"))
    assert where.startswith("emb (Embedding) at") and "test_ane_lint.py:" in where, out
    fixes = [line for line in lines if ": fix: " in line]
    rules = {line.split()[0] for line in fixes}
    assert fixes and len(rules) == len(fixes)  # what to do, once per rule


def _image_model(precision: str, **image):
    from devicefit._lazy import coremltools

    ct = coremltools()
    inputs = [ct.ImageType(name="image", shape=X4.shape, **image)]
    return convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), X4, precision=precision, inputs=inputs)


def test_image_preprocessing_of_an_fp16_model_is_not_a_fallback():
    # issue 12: the scale/bias ops coremltools inserts for ct.ImageType compute in fp32 (the image's dtype)
    # and were flagged "fallback: convert with FLOAT16" on a model already converted with FLOAT16
    report = ane_lint.lint(_image_model("fp16", scale=1 / 255, bias=[-1.0, 0.0, 1.0]))
    pre = [o for o in report.ops if o.op_type in ("mul", "add")]
    assert len(pre) == 2  # the preprocessing ops are there, and linted
    assert not report.flagged() and not report.program
    assert report.summary.fallback_ops == 0 and report.summary.transitions == 0
    assert all(o.verdict == "ne" for o in pre)


def test_image_input_of_an_fp32_model_is_still_barred():
    report = ane_lint.lint(_image_model("fp32", scale=1 / 255, bias=[-1.0, 0.0, 1.0]))
    assert [f.rule for f in report.program] == ["ANE-FP32"]
    conv = next(o for o in report.ops if o.op_type == "conv")
    assert [f.rule for f in conv.findings] == ["ANE-FP32"]


def test_fp32_op_of_an_fp16_model_is_not_told_to_convert_with_fp16():
    # an op kept in fp32 (--fp32-ops / op_selector) in an fp16 program: FLOAT16 was already applied
    from devicefit._lazy import coremltools

    ct = coremltools()
    traced = torch.jit.trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval(), X4)
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=X4.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.transform.FP16ComputePrecision(op_selector=lambda op: op.op_type != "relu"),
    )
    report = ane_lint.lint(mlmodel)
    relu = next(o for o in report.ops if o.op_type == "relu")
    (finding,) = relu.findings
    assert finding.rule == "ANE-FP32" and relu.verdict == "fallback"
    assert "FLOAT16" not in finding.fix and "fp32-ops" in finding.fix


def test_a_dilated_conv_may_fall_back_it_is_not_predicted_to():
    # DeepLabV3's ASPP failed check's neural_engine verdict (72% of FLOPs "likely fall back") on one source that
    # calls its own entry a guess, while Apple ships DeepLabV3 for the Neural Engine: a contested rule says "maybe"
    rule = next(r for r in OP_RULES if r.id == "ANE-DILATION")
    assert rule.severity == "maybe"
    report = _lint(nn.Conv2d(3, 4, 3, dilation=2), X4)
    assert report.summary.fallback_ops == 0 and report.summary.maybe_ops == 1
