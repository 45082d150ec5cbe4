"""``check`` on the round-2 outside models (tests/corpus/outside2.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

BUFFER_UPDATE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Online(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(4, 3)
            self.register_buffer("running", torch.zeros(4))

        def forward(self, x):
            self.running.mul_(0.9).add_(0.1 * x.mean(0))
            return self.fc(x - self.running)


    def make_model():
        return Online().eval(), torch.randn(2, 4) + 3
    """
)


def test_a_model_updating_its_buffers_in_forward_is_not_said_to_draw_random_numbers(tmp_path):
    # an online normalizer's running mean changes every call: check said "the model draws random numbers"
    path = tmp_path / "online.py"
    path.write_text(BUFFER_UPDATE)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail"
    assert verdict.reason.startswith("not verifiable, not a conversion problem"), verdict.reason
    assert "random" not in verdict.reason.split(";")[0], verdict.reason
    assert "buffer" in verdict.reason and "running" in verdict.reason, verdict.reason
    assert "forward" in verdict.reason  # what to do: keep forward from changing the model's state


def test_a_model_returning_a_dataclass_has_one_output_per_field():
    # a user's own @dataclass result: "model returned Detections; expected a tensor, tuple, list or dict", exit 2
    from dataclasses import dataclass

    import torch

    from devicefit.sources.spec import flatten_outputs

    @dataclass
    class Detections:
        scores: torch.Tensor
        embedding: torch.Tensor
        extra: object = None

    out = Detections(torch.zeros(1, 4), torch.ones(1, 8))
    assert [name for name, _ in flatten_outputs(out)] == ["scores", "embedding"]
    assert [name for name, _ in flatten_outputs((out, torch.zeros(1)))] == [
        "output_0_scores", "output_0_embedding", "output_1"
    ]  # fmt: skip
