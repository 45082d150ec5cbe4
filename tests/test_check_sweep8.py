"""``check`` on the round-8 outside models (tests/corpus/outside8.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

STATE_INPUT = textwrap.dedent(
    """
    import torch


    class Step(torch.nn.Module):
        # a streaming step as Silero VAD writes it: the recurrent state is an input named `state` (a name Core ML
        # reserves: coremltools calls the converted model's input `state_workaround`)
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.cell = torch.nn.GRUCell(8, 8)

        def forward(self, x, state):
            h = self.cell(x, state)
            return torch.sigmoid(h.sum(-1)), h


    def make_model():
        g = torch.Generator().manual_seed(0)
        return Step().eval(), (torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g))
    """
)


def test_an_input_named_as_a_core_ml_reserved_word_is_fed_by_its_converted_name(tmp_path):
    # check stopped with "error: unknown input 'state'; the model's inputs are: x, state_workaround": it fed
    # the converted program by the PyTorch names, and coremltools renames an input called `state`, `tensor`,
    # `string`, `bool`, `list`, ... (MIL's reserved words)
    path = tmp_path / "step.py"
    path.write_text(STATE_INPUT)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    assert result.verdicts["numerics"].status in ("pass", "warn"), result.verdicts["numerics"].reason
    # the app feeds the Core ML name: the convert verdict says it
    assert "'state' is 'state_workaround'" in result.verdicts["convert"].reason, result.verdicts[
        "convert"
    ].reason


NEAREST_WARP = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class Warp(torch.nn.Module):
        # nearest sampling on a grid predicted by a conv: fp16 weights move some grid points across a pixel
        # boundary, so the shipped package picks other pixels on some inputs (a real weight storage loss)
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.grid = torch.nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            grid = torch.tanh(self.grid(x)).permute(0, 2, 3, 1) * 1.3
            return F.grid_sample(x, grid, mode="nearest", padding_mode="reflection", align_corners=True)


    def make_model():
        return Warp().eval(), torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    """
)


def test_a_weight_storage_failure_is_localized_on_the_sample_where_the_weights_differ(tmp_path):
    # the FAIL said "weight storage loss ... keep more precision for the weights" without a line: the search
    # for the first differing line ran on the sample whose *fp32 conversion* differed most (all agree exactly
    # here, so the first one), where the fp16 weights happened to pick the same pixels as PyTorch
    path = tmp_path / "warp.py"
    path.write_text(NEAREST_WARP)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    numerics = result.verdicts["numerics"]
    assert numerics.status == "fail" and numerics.reason.startswith("weight storage loss"), numerics.reason
    assert "warp.py:" in numerics.reason, numerics.reason


DYNAMIC_QUANT = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(100, 16)
            self.fc = nn.Linear(16, 4)

        def forward(self, ids):
            return self.fc(self.emb(ids))


    def make_model():
        # what many try first to shrink a model for a phone: PyTorch's dynamic int8 quantization
        model = torch.ao.quantization.quantize_dynamic(Tagger().eval(), {nn.Linear}, dtype=torch.qint8)
        return model, torch.randint(0, 100, (1, 8))
    """
)


def test_a_torch_ao_quantized_model_is_refused_by_naming_its_quantized_modules(tmp_path):
    # the convert FAIL read "torchscript: failed (AssertionError: AssertionError) | torch.export: failed
    # (AttributeError ...)": coremltools asserts on PyTorch's packed int8 weights, and nothing said which module
    # or what to do
    path = tmp_path / "tagger.py"
    path.write_text(DYNAMIC_QUANT)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    reason = result.verdicts["convert"].reason
    assert result.verdicts["convert"].status == "fail", reason
    assert "fc (DynamicQuantizedLinear)" in reason and "devicefit compress" in reason, reason
    assert "tagger.py:14" in reason, reason  # and where its op is
