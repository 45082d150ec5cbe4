"""``check`` on the round-6 outside models (tests/corpus/outside6*.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

GCN = textwrap.dedent(
    """
    import torch


    class GCN(torch.nn.Module):
        # Kipf & Welling: D^-1/2 (A + I) D^-1/2 over a dense 0/1 adjacency given as a float input
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x, adj):
            a = adj + torch.eye(adj.shape[-1])
            dinv = a.sum(-1).rsqrt()
            return (dinv[..., :, None] * a * dinv[..., None, :]) @ self.lin(x)


    def make_model():
        g = torch.Generator().manual_seed(0)
        adj = (torch.rand(1, 6, 6, generator=g) > 0.6).float()
        return GCN().eval(), (torch.randn(1, 6, 4, generator=g), adj)
    """
)


def test_generated_samples_the_pytorch_model_turns_to_nan_are_left_out_not_called_a_conversion_problem(
    tmp_path,
):
    # GCN with a float 0/1 adjacency input: check drew standard-normal adjacencies, negative row sums made
    # PyTorch's own rsqrt NaN, and check said "conversion problem: ... SNR NaN dB; the fp32 run first produces
    # inf/NaN at ... rsqrt": the conversion was exact, the generated data was outside the model's domain
    path = tmp_path / "gcn.py"
    path.write_text(GCN)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=4, devices=["iphone-12"], repair=False)
    )
    numerics = result.verdicts["numerics"]
    assert numerics.status in ("pass", "warn"), numerics.reason
    note = next((w for w in result.warnings if "generated" in w and "NaN" in w), None)
    assert note is not None, result.warnings
    assert "--data" in note, note


OVERLAP = textwrap.dedent(
    """
    import torch


    class RunningSum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            y = self.fc(x)
            y[..., 1:].add_(y[..., :-1])  # LINE_OVERLAP: reads what it writes in eager PyTorch
            return y * 2


    def make_model():
        return RunningSum().eval(), torch.randn(3, 8)
    """
)


def test_an_in_place_write_over_its_own_source_is_named_as_eager_only_not_a_converter_bug(tmp_path):
    # y[..., 1:].add_(y[..., :-1]): eager PyTorch reads elements it already wrote (a running sum), torch.export
    # and every converter compute the functional y[1:] + y[:-1]; check said "conversion problem ... look at that
    # line and what it reads (integers beyond int32, an argument the converter ignored)": no converter can match
    path = tmp_path / "overlap.py"
    path.write_text(OVERLAP)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    numerics = result.verdicts["numerics"]
    assert numerics.status == "fail", numerics.reason
    assert "torch.export" in numerics.reason and "eager" in numerics.reason, numerics.reason
    assert "clone()" in numerics.reason, numerics.reason
    line = next(i for i, text in enumerate(OVERLAP.splitlines(), 1) if "LINE_OVERLAP" in text)
    assert f"overlap.py:{line}" in numerics.reason, numerics.reason  # near the line that writes


UNPACK = textwrap.dedent(
    """
    import torch


    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qkv = torch.nn.Linear(8, 24)

        def forward(self, x):
            q, k, v = self.qkv(x).view(1, 5, 3, 8).permute(2, 0, 1, 3)  # iterates a tensor of 3
            return (q @ k.transpose(-1, -2)).softmax(-1) @ v


    def make_model():
        return Attention().eval(), torch.randn(1, 5, 8)
    """
)


def test_unpacking_a_tensor_at_fixed_shapes_is_not_called_a_frozen_value(tmp_path):
    # q, k, v = qkv (timm-era attention, CaiT, MaxViT, GQA in round 6): torch's TracerWarning "Iterating over a
    # tensor might cause the trace to be incorrect" became "tracing froze a Python-side value ... the converted
    # model repeats what the example input did there": it iterates the axis of size 3 that every input has
    path = tmp_path / "unpack.py"
    path.write_text(UNPACK)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    assert result.verdicts["numerics"].status in ("pass", "warn"), result.verdicts["numerics"].reason
    assert not any("froze" in w for w in result.warnings), result.warnings


SIZES = textwrap.dedent(
    """
    import math

    import torch


    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qk = torch.nn.Linear(8, 16)

        def forward(self, x):
            q, k = self.qk(x).split(8, -1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # LINE_SIZE: a size as a float
            half = int(att.shape[-1] * 0.5)  # LINE_HALF: a size as an int
            peak = float(att.abs().max())  # LINE_DATA: a value as a float: frozen at the example
            return att[..., :half] / peak


    def make_model():
        return Scaled().eval(), torch.randn(1, 6, 8)
    """
)


def test_a_size_read_as_a_python_number_is_not_called_a_frozen_value_at_fixed_shapes(tmp_path):
    # math.sqrt(q.shape[-1]) in every hand-written attention (round 6: StyleGAN2, CoAtNet, masked rows, shapes
    # as ints): "tracing froze a Python-side value at ... Converting a tensor to a Python float", and named as the
    # likely cause of any conversion problem; a size is the same for every input of the converted shape
    path = tmp_path / "sizes.py"
    path.write_text(SIZES)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    lines = {
        tag: i
        for i, text in enumerate(SIZES.splitlines(), 1)
        for tag in ("SIZE", "HALF", "DATA")
        if f"LINE_{tag}" in text
    }
    froze = [w for w in result.warnings if "froze" in w]
    assert not any(f"sizes.py:{lines[t]}:" in w for w in froze for t in ("SIZE", "HALF")), froze
    assert any(f"sizes.py:{lines['DATA']}:" in w for w in froze), froze  # a value from data still warns
