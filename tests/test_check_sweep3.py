"""``check`` on the round-3 outside models (tests/corpus/outside3.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

import pytest

from devicefit.check import CheckOptions, run_check
from devicefit.cli import main

BOXES = textwrap.dedent(
    """
    import torch


    class BoxEmbed(torch.nn.Module):
        # LayoutLM's layout embedding: widths and heights of [x0, y0, x1, y1] boxes index a table
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.width = torch.nn.Embedding(64, 8)
            self.height = torch.nn.Embedding(64, 8)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, boxes):
            w = self.width(boxes[..., 2] - boxes[..., 0])
            h = self.height(boxes[..., 3] - boxes[..., 1])
            return self.head(w + h)


    def make_model():
        g = torch.Generator().manual_seed(0)
        corner = torch.randint(0, 30, (1, 6, 2), generator=g)
        size = torch.randint(1, 30, (1, 6, 2), generator=g)
        return BoxEmbed().eval(), torch.cat([corner, corner + size], -1)
    """
)


def test_generated_samples_the_pytorch_model_refuses_are_left_out_not_blamed_on_the_user(tmp_path, capsys):
    # HF LayoutLM: random integers in the example's range make boxes with x1 < x0; check fed them and exited 2,
    # "gather: index -37 ... is out of range; check the values fed to the index inputs": the user fed nothing
    path = tmp_path / "boxes.py"
    path.write_text(BOXES)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=6, devices=["iphone-12"], repair=False)
    )
    assert result.verdicts["numerics"].status == "pass", result.verdicts["numerics"].reason
    assert len(result.fp32.outputs) == 1
    # since trust9 the widths and heights the model computes stay inside their tables: nothing is refused (the
    # refusal note, for ids computed otherwise, is tested in tests/test_check_trust9.py)
    assert result.fp32.samples == 6 and not any("refused" in w for w in result.warnings), result.warnings
    note = next(w for w in result.warnings if "column 2 minus column 0" in w)
    assert "'boxes'" in note and "64 rows" in note, note
    code = main(["check", f"{path}:make_model", "--samples", "6", "--target", "iphone-12", "--no-fix"])
    assert code == 0, capsys.readouterr().err


def test_a_failed_torch_export_does_not_log_tracebacks(capfd):
    # HF Nystromformer under torch.export: torch's fake-tensor logger wrote two 40-line tracebacks ("E1201 ...
    # failed while attempting to run meta for aten.add.Tensor") to the terminal before check's one-line verdict
    import torch

    from devicefit.convert.frontends import export_program
    from devicefit.sources.module import from_module

    class ExportOnlyBug(torch.nn.Module):
        def forward(self, x):
            if torch.compiler.is_exporting():  # a shape bug only the exported path has (HF's tracing masks)
                return x + torch.ones(1, 3, 5)
            return x * 2

    source = from_module("bug.py", "python", ExportOnlyBug().eval(), torch.ones(1, 4, 5), None)
    with pytest.raises(RuntimeError):
        export_program(source)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out, captured.err[:300]
    assert "fake_tensor" not in captured.err, captured.err[:300]


TRACE_ONLY_BUG = textwrap.dedent(
    """
    import torch


    class Landmarks(torch.nn.Module):
        # HF Nystromformer: under tracing transformers builds a [q, k] mask its landmark attention cannot add
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x):
            scores = self.proj(x)[:, :4]
            if torch.jit.is_tracing() or torch.compiler.is_exporting():
                scores = scores + torch.zeros(1, x.shape[1], 8)  # LINE_BUG
            return scores.softmax(-1)


    def make_model():
        torch.manual_seed(0)
        return Landmarks().eval(), torch.randn(1, 16, 8)
    """
)


def test_a_model_that_raises_only_while_traced_is_named_at_its_line(tmp_path):
    # was: "torchscript: failed (RuntimeError: The size of tensor a (4) must match the size of tensor b (16) at
    # non-singleton dimension 1)": no place, and nothing said PyTorch ran the model fine outside the tracer
    path = tmp_path / "landmarks.py"
    path.write_text(TRACE_ONLY_BUG)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    assert not result.convert.ok
    line = next(i for i, t in enumerate(TRACE_ONLY_BUG.splitlines(), 1) if "LINE_BUG" in t)
    for frontend in result.convert.frontends:
        assert f"landmarks.py:{line}" in frontend["error"], frontend
        assert "while tracing" in frontend["error"], frontend
    assert f"landmarks.py:{line}" in result.verdicts["convert"].reason, result.verdicts["convert"].reason


THREAD_SUMS = textwrap.dedent(
    """
    import torch


    class ThreadSums(torch.nn.Module):
        # stands for a deep model whose float sums PyTorch splits by thread count (HF Depth Anything differs by
        # 2.6e-6 between 1 and 2 threads): deterministic at any one setting
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(x) * (1 + 5e-6 * torch.get_num_threads())


    def make_model():
        return ThreadSums().eval(), torch.randn(2, 8)
    """
)


def test_thread_count_float_noise_is_not_called_random(tmp_path):
    # HF Depth Anything: "not verifiable: the model draws random numbers; PyTorch itself gives outputs 2.64e-06
    # apart": check ran PyTorch single-threaded while validating and again with every thread to test repeatability
    import torch

    path = tmp_path / "sums.py"
    path.write_text(THREAD_SUMS)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the validation runs small models on one thread: make the two settings differ
    try:
        result = run_check(
            CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
        )
    finally:
        torch.set_num_threads(before)
    assert "randomness" not in result.extras, result.extras
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason


def test_an_error_inside_coremltools_is_not_called_the_models_own():
    # a frame of numpy called by coremltools is no model line: "ValueError at fromnumeric.py:57 while tracing the
    # model" was shown for coremltools' failure to translate an expand (HF Informer, torch.export)
    import numpy as np

    from devicefit.sources.module import raised_at

    def translate():  # stands for coremltools' translation, calling numpy
        return np.reshape(np.arange(64), (1, 1, 1, 1))

    code = compile(
        "def convert(f):\n    return f()\n",
        "/site-packages/coremltools/converters/_converters_entry.py",
        "exec",
    )
    scope: dict = {}
    exec(code, scope)  # a frame whose file is coremltools'
    with pytest.raises(ValueError) as info:
        scope["convert"](translate)
    assert raised_at(info.value) is None
    with pytest.raises(ValueError) as info:
        translate()  # no coremltools frame: the innermost frame outside the libraries is this file's
    assert raised_at(info.value).startswith("test_check_sweep3.py:")


MILLIMETRES = textwrap.dedent(
    """
    import torch


    def make_model():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv1d(3, 16, 1), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Conv1d(16, 4, 1)
        )
        return net.eval(), torch.randn(2, 3, 64) * 3e4  # LiDAR points in millimetres: beyond fp16's 65504
    """
)


def test_an_input_beyond_fp16_is_named_as_the_input(tmp_path):
    # PointNet on millimetre points: "fp16 overflow at tnet.1 (BatchNorm1d) at net.py:408 (cast_2)": the
    # overflowing op was the cast of the model's input to fp16, named by a stale coremltools op name
    path = tmp_path / "points.py"
    path.write_text(MILLIMETRES)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    reason = result.verdicts["numerics"].reason
    assert result.verdicts["numerics"].status == "fail", reason
    assert "fp16 overflow at the input" in reason, reason
    assert "scale x into range" in reason or "scale input into range" in reason, reason  # what to do
    assert "BatchNorm1d" not in reason.split("(+")[0], reason
