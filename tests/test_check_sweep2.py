"""``check`` on the round-2 outside models (tests/corpus/outside2.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

import pytest

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


def test_a_bfloat16_model_is_checked_in_float32_with_a_note():
    # bf16 weights and inputs: "internal error: TypeError: Got unsupported ScalarType BFloat16", exit 3
    import torch

    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).to(
        torch.bfloat16
    )
    x = torch.randn(2, 4).to(torch.bfloat16)
    source = from_module("net.py", "python", net, x, None)
    assert source.input_specs[0].dtype == "float32"
    out = source.reference(source.example_inputs)["output"]
    expected = (
        net(x.float()).detach().numpy()
    )  # cast in place (as eval() is): the same bf16 values in float32
    assert abs(out - expected).max() < 1e-6
    assert any("bfloat16" in n and "checked in float32" in n for n in source.notes), source.notes


TINY = textwrap.dedent(
    """
    import torch


    def make_model():
        torch.manual_seed(0)
        return torch.nn.Linear(6, 3).eval(), torch.ones(1, 6)
    """
)


def test_data_holding_only_nan_is_bad_input_exit_2_in_one_line(tmp_path, capsys):
    # every sample NaN: check converted, compared nothing and exited 1 with a 'data' verdict
    import numpy as np

    from devicefit.cli import main

    (tmp_path / "tiny.py").write_text(TINY)
    np.savez(tmp_path / "nan.npz", input=np.full((3, 1, 6), np.nan, np.float32))
    code = main(["check", str(tmp_path / "tiny.py"), "--data", str(tmp_path / "nan.npz"), "--samples", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "NaN" in err and "nan.npz" in err and "every" in err, err


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("return torch.ones(1, 6), torch.nn.Linear(6, 3)", "item 2 of the tuple is the module"),
        ("return torch.nn.Linear(6, 3).state_dict(), torch.ones(1, 6)", "a state dict"),
        ("return (torch.ones(1, 6),)", "(Tensor)"),
    ],
)
def test_a_factory_returning_the_wrong_tuple_says_what_it_returned_and_what_to_do(tmp_path, body, said):
    # was: "factory make_model() returned tuple; expected (nn.Module, example_inputs) or {...}"
    from devicefit.errors import ModelLoadError
    from devicefit.sources import load_source

    (tmp_path / "bad.py").write_text(f"import torch\n\n\ndef make_model():\n    {body}\n")
    with pytest.raises(ModelLoadError) as info:
        load_source(f"{tmp_path / 'bad.py'}:make_model")
    message = str(info.value)
    assert said in message, message
    assert "return (model, example_inputs)" in message, message
    assert "\n" not in message


def test_a_failed_torch_export_does_not_print_its_graph(capfd):
    # HF Longformer: torch.export printed its partial FX graph (4 x 270 lines) to stderr before check's verdict
    import torch

    from devicefit.convert.frontends import export_program
    from devicefit.sources.module import from_module

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            if int(x.sum().item() > 0) == 1:  # a guard on a value: torch.export cannot decide it
                return x * 2
            return x - 1

    source = from_module("dd.py", "python", DataDependent().eval(), torch.ones(1, 4), None)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises, the point is what it printed
        export_program(source)
    captured = capfd.readouterr()
    assert "def forward" not in captured.err + captured.out, captured.err[:300]


def test_coremltools_numpy_warnings_stay_off_the_terminal(recwarn):
    # int64 ids masked into an fp16 program: coremltools' optimize_repeat_ops printed "RuntimeWarning: overflow
    # encountered in cast" (its own value-range bookkeeping, nothing about the model) on the user's terminal
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources.module import from_module
    from tests.corpus.outside2 import make_int64_embed

    module, example = make_int64_embed()
    convert(from_module("ids.py", "python", module, example, None), ConvertOptions())
    assert not [w for w in recwarn if "coremltools" in w.filename], [str(w.message) for w in recwarn]


def test_an_fp16_script_module_converts_in_float32(recwarn):
    # a TorchScript model saved in fp16: check said "1 unsupported op(s): aten::conv2d" (coremltools met an fp16
    # bias beside an fp32 weight), blaming op support for a dtype
    import torch

    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).half().eval()
    x = torch.randn(1, 3, 8, 8).half()
    source = from_module("net.pt", "torchscript", torch.jit.script(net), x, None)
    assert source.input_specs[0].dtype == "float32"
    assert any("float16" in n and "checked in float32" in n for n in source.notes), source.notes
    # copying a ScriptModule's parameters reads their .grad: torch's UserWarning was printed to the user
    assert not [w for w in recwarn if ".grad" in str(w.message)], [str(w.message)[:80] for w in recwarn]
    result = convert(source, ConvertOptions())
    assert result.mlmodel is not None
    out = source.reference(source.example_inputs)["output"]
    assert abs(out - net.float()(x.float()).detach().numpy()).max() < 1e-5


def test_a_model_left_in_training_mode_is_checked_in_eval_mode_and_told_so():
    # BatchNorm / dropout left in train mode were silently switched to eval: the user's own model(x) answers
    # differently from everything check measured, and nothing said why
    import torch

    from devicefit.sources.module import from_module

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.2))
    source = from_module("net.py", "python", net.train(), torch.randn(2, 4), None)
    note = next((n for n in source.notes if "training mode" in n), None)
    assert note is not None, source.notes
    assert "1 (BatchNorm1d)" in note and "2 (Dropout)" in note and "model.eval()" in note, note
    # train mode without a layer that behaves differently in it changes nothing: no note
    plain = from_module("net.py", "python", torch.nn.Linear(4, 2).train(), torch.randn(2, 4), None)
    assert not [n for n in plain.notes if "training mode" in n]
