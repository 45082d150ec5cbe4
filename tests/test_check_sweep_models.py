"""``check`` on architectures from outside the repo (the outside-model sweep): each test failed before its fix."""

from __future__ import annotations

import textwrap

import pytest

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


@pytest.mark.parametrize("family", ["vision", "audio"])
def test_a_hugging_face_vision_or_audio_folder_gets_inputs_of_its_kind(tmp_path, family):
    # a saved DeiT folder was fed input_ids / attention_mask: 'failed on inputs input_ids:1x128:int32 ...:
    # AttributeError', exit 2, with nothing saying which input the model takes
    import torch
    import transformers

    from devicefit.sources import load_source

    torch.manual_seed(0)
    if family == "vision":
        config = transformers.DeiTConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=24,
            patch_size=8, num_channels=3,
        )  # fmt: skip
        model, expected = transformers.DeiTForImageClassification(config), ("pixel_values", (1, 3, 24, 24))
    else:
        config = transformers.Wav2Vec2Config(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
            conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
        )  # fmt: skip
        model, expected = transformers.Wav2Vec2Model(config), ("input_values", (1, 16000))
    model.eval().save_pretrained(tmp_path / "folder")
    source = load_source(str(tmp_path / "folder"))
    assert [(s.name, tuple(s.shape)) for s in source.input_specs] == [expected]
    assert source.input_specs[0].dtype == "float32"


DATACLASS_ARGS = textwrap.dedent(
    """
    from __future__ import annotations

    from dataclasses import dataclass

    import torch


    @dataclass
    class ModelArgs:  # the LLaMA-style config most hand-written models carry
        dim: int = 8


    class Net(torch.nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.lin = torch.nn.Linear(args.dim, 4)

        def forward(self, x):
            return self.lin(x)


    def make_model():
        return Net(ModelArgs()).eval(), torch.randn(1, 8)
    """
)


def test_a_model_file_with_a_dataclass_loads(tmp_path):
    # dataclasses look their module up in sys.modules, where the model file was never registered:
    # "importing model.py raised AttributeError: 'NoneType' object has no attribute '__dict__'", exit 2
    from devicefit.sources import load_source

    path = tmp_path / "model.py"
    path.write_text(DATACLASS_ARGS)
    source = load_source(f"{path}:make_model")
    assert [s.name for s in source.input_specs] == ["x"]


def test_an_fp32_inf_in_a_conversion_problem_is_named_by_its_pytorch_module(tmp_path):
    # the conversion-problem verdict led with the Core ML value name: 'first produces inf/NaN at var_12 (log)'
    from types import SimpleNamespace

    import torch

    from devicefit import interp
    from devicefit.check.verdicts import decide
    from devicefit.convert import ConvertOptions, convert
    from tests.convert.helpers import source_of

    class LogHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(self.proj(x))

    program = interp.load(convert(source_of(LogHead(), (torch.randn(1, 4),)), ConvertOptions()).mlmodel)
    step = next(s for s in program.plan.block.steps if s.op_type == "log")
    nonfinite = SimpleNamespace(op=step.name, op_type="log", value=step.outputs[0], model_input=None)
    failed = SimpleNamespace(
        passed=False, measured_on="fp32 conversion", comparison=SimpleNamespace(headline=lambda: "SNR 3 dB")
    )
    result = SimpleNamespace(
        convert=SimpleNamespace(ok=True, rescued=[], trace_warnings=[]), data_findings=[], fp16=object(), fp32=None,
        questions={"conversion_fidelity": failed}, divergence=SimpleNamespace(first_nonfinite_fp32=nonfinite),
        extras={}, program=program, fits=[], repair=None, trained=None,
    )  # fmt: skip
    reason = decide(result)["numerics"].reason
    assert "first produces inf/NaN at the top module (LogHead) at " in reason, reason
    assert "test_check_sweep_models.py:" in reason
