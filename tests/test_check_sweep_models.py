"""``check`` on architectures from outside the repo (the outside-model sweep): each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check
from devicefit.cli import main

PACKED_LSTM = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(50, 8)
            self.rnn = nn.LSTM(8, 8, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids), lengths, batch_first=True)
            out, _ = self.rnn(packed)  # LINE_RNN
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            return self.head(out)


    def make_model():
        return Tagger().eval(), (torch.randint(0, 50, (2, 6)), torch.tensor([6, 4]))
    """
)


def _line(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_a_converted_program_that_cannot_run_is_a_conversion_problem_not_bad_input(tmp_path, capsys):
    # coremltools converts packed sequences into a program whose LSTM state has the batch of the lengths' first
    # value: the interpreter's refusal surfaced as exit 2 'check the shapes you feed' on the model's own input
    path = tmp_path / "tagger.py"
    path.write_text(PACKED_LSTM)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail"
    assert verdict.reason.startswith("conversion problem"), verdict.reason
    assert "rnn (LSTM) at " in verdict.reason, verdict.reason
    assert f"tagger.py:{_line(PACKED_LSTM, 'LINE_RNN')}:" in verdict.reason, verdict.reason
    assert "shapes you feed" not in verdict.reason
    assert result.size is not None  # the rest of the check still ran
    code = main(["check", f"{path}:make_model", "--samples", "2", "--target", "iphone-12", "--no-fix"])
    assert code == 1, capsys.readouterr().err


ADDITIVE_MASK = textwrap.dedent(
    """
    import torch

    INF = 1e6  # HF Funnel's mask fill: beyond fp16, but far from finfo.min


    class Attend(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qk = torch.nn.Linear(16, 32)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, x, mask):
            q, k = self.qk(x).chunk(2, dim=-1)
            scores = q @ k.transpose(1, 2) - INF * (1 - mask[:, None, :].float())
            return self.head(scores.softmax(-1) @ x).mean(1)


    def make_model():
        mask = torch.ones(1, 10, dtype=torch.int32)
        mask[:, 7:] = 0
        return Attend().eval(), (torch.randn(1, 10, 16), mask)
    """
)


def test_an_additive_mask_fill_beyond_fp16_is_not_an_fp16_overflow(tmp_path):
    # 1e6 became 65504 (the nearest fp16), so 'score - 65504' overflowed to -inf in every padded column: check
    # failed fp16 compute with outputs within tolerance (HF Funnel)
    path = tmp_path / "attend.py"
    path.write_text(ADDITIVE_MASK)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=4, devices=["iphone-12"], repair=False)
    )
    assert not result.divergence.overflow_ops, result.divergence.overflow_ops
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


RANK6 = textwrap.dedent(
    """
    import torch


    class Windows(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(8, 24)

        def forward(self, x):
            qkv = self.qkv(x).reshape(1, 2, 2, 4, 3, 8)  # LINE_RANK6: Hiera's mask-unit attention
            return qkv.sum(dim=(1, 2))


    def make_model():
        torch.manual_seed(0)
        return Windows().eval(), torch.randn(1, 16, 8)
    """
)


def test_a_rank_6_tensor_is_named_by_its_source_line_not_the_core_ml_layer(tmp_path):
    # the verdict was coremltools' 'Layer "qkv_3_cast_fp16", with type "reshape", outputs a rank 6 tensor'
    path = tmp_path / "windows.py"
    path.write_text(RANK6)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"]))
    assert result.verdicts["convert"].status == "fail"
    (op,) = result.convert.unsupported
    assert op["location"] == f"windows.py:{_line(RANK6, 'LINE_RANK6')}", op
    assert op["module_path"] == "" and op["op"] == "aten::reshape", op
    assert "at most 5 dimensions" in op["hint"] and "cast_fp16" not in op["hint"], op
    assert "cast_fp16" not in result.verdicts["convert"].reason


RANDOM_MASKING = textwrap.dedent(
    """
    import torch


    class RandomMasking(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x):
            noise = torch.rand(x.shape[0], x.shape[1])  # LINE_NOISE: ViTMAE's random patch shuffle
            keep = torch.argsort(noise, dim=1)[:, :4]
            kept = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[2]))
            return self.proj(kept)


    def make_model():
        return RandomMasking().eval(), torch.randn(1, 8, 8)
    """
)


def test_a_model_that_draws_random_numbers_is_not_called_a_conversion_problem(tmp_path, capsys):
    # HF ViTMAE shuffles patches by torch.rand even in eval: PyTorch's reference changes run to run and check
    # reported 'conversion problem: SNR -1.4 dB'
    path = tmp_path / "masking.py"
    path.write_text(RANDOM_MASKING)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail"
    assert verdict.reason.startswith("not verifiable, not a conversion problem"), verdict.reason
    assert (
        "random" in verdict.reason and f"masking.py:{_line(RANDOM_MASKING, 'LINE_NOISE')}" in verdict.reason
    )
    assert "as an input" in verdict.reason  # what to do
    assert main(["check", f"{path}:make_model", "--samples", "2", "--target", "iphone-12", "--no-fix"]) == 1
