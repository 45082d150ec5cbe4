"""The scan blames the node a frontend stopped at, not the first node of the same op kind."""

from __future__ import annotations

import textwrap

from devicefit.convert import scan
from devicefit.sources import load_source

# Two uses of one op: the first converts (a constant input, folded), the second does not (a run-time 40x40 matrix:
# devicefit's unrolled LU stops at 32x32).
TWO_INVERSES = textwrap.dedent(
    """
    import torch


    class Whitening(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cov = torch.nn.Parameter(torch.eye(40) * 2.0)

        def forward(self, x):
            return x @ torch.linalg.inv(self.cov)  # LINE_CONSTANT


    class Solver(torch.nn.Module):
        def forward(self, x):
            gram = x.transpose(-1, -2) @ x + torch.eye(40)
            return torch.linalg.inv(gram)  # LINE_DYNAMIC


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.whiten = Whitening()
            self.solve = Solver()

        def forward(self, x):
            return self.solve(self.whiten(x))


    def make_model():
        return Net().eval(), torch.randn(1, 6, 40)
    """
)


def _line(marker: str) -> int:
    return next(i for i, line in enumerate(TWO_INVERSES.splitlines(), 1) if marker in line)


def test_value_dependent_failure_is_placed_on_the_node_that_failed(tmp_path):
    path = tmp_path / "whiten.py"
    path.write_text(TWO_INVERSES)
    report = scan(load_source(f"{path}:make_model"))
    assert not report.ok
    (entry,) = [u for u in report.unsupported if "inv" in u.op]
    assert entry.location == f"whiten.py:{_line('LINE_DYNAMIC')}", entry
    assert entry.module_path == "solve", entry
    # the op exists in coremltools: the hint carries coremltools' reason for refusing this use
    assert "register_torch_op" not in entry.hint, entry.hint


DYNAMIC_FILL = textwrap.dedent(
    """
    import torch


    class DropColumn(torch.nn.Module):
        def forward(self, x, idx):
            y = x.clone()
            y[:, idx[0]] = 0.0  # LINE_FILL
            return y * 2


    def make_model():
        return DropColumn().eval(), (torch.randn(4, 6), torch.tensor([1, 3]))
    """
)


def test_a_rewritten_assignment_is_placed_on_the_assignment_with_a_fix(tmp_path):
    # coremltools rewrites `y[:, i] = v` into an internal op the torch graph does not have: the scan listed it
    # with no location and told the user to register a translation for coremltools' internal op
    path = tmp_path / "drop.py"
    path.write_text(DYNAMIC_FILL)
    report = scan(load_source(f"{path}:make_model"))
    assert not report.ok
    (entry,) = report.unsupported
    line = next(i for i, text in enumerate(DYNAMIC_FILL.splitlines(), 1) if "LINE_FILL" in text)
    assert entry.location == f"drop.py:{line}", entry
    assert "torch.where" in entry.hint, entry.hint


PACKED_GRU = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.gru = nn.GRU(8, 16, batch_first=True)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            return nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]


    def make_model():
        return Tagger().eval(), (torch.randn(2, 5, 8), torch.tensor([5, 3]))
    """
)


def test_a_translation_crash_on_a_packed_sequence_says_what_to_do(tmp_path):
    # the hint was coremltools' crash, "AttributeError: 'list' object has no attribute 'val'"
    path = tmp_path / "tagger.py"
    path.write_text(PACKED_GRU)
    report = scan(load_source(f"{path}:make_model"))
    assert not report.ok
    (entry,) = [u for u in report.unsupported if "gru" in u.op]
    assert entry.module_path == "gru"
    assert "pack_padded_sequence" in entry.hint and "mask" in entry.hint, entry.hint


UPSAMPLE = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F


    class Up(torch.nn.Module):
        def forward(self, x):
            return torch.masked_select(x, x > 0)  # a data-dependent shape: no translation can give it


    def make_model():
        return Up().eval(), torch.randn(1, 2, 4, 5, 6)
    """
)


def test_an_op_both_frontends_refuse_is_listed_once(tmp_path):
    # TorchScript names it masked_select, torch.export masked_select.default: listed twice before (this test
    # used 2-D bilinear with a fractional scale, trilinear resizing, bucketize, then float_power: all convert now)
    path = tmp_path / "up.py"
    path.write_text(UPSAMPLE)
    report = scan(load_source(f"{path}:make_model"))
    assert not report.ok
    assert len(report.unsupported) == 1, [u.op for u in report.unsupported]
    assert sorted(report.unsupported[0].frontends) == ["torch.export", "torchscript"]


TWO_USERS = textwrap.dedent(
    """
    import torch


    class Special(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x)


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.left = Special()
            self.right = Special()

        def forward(self, x):
            return self.left(x) + self.right(x)


    def make_model():
        return Net().eval(), torch.randn(2, 3)
    """
)


def test_an_op_used_by_several_modules_names_each(tmp_path):
    # the module column said 'left' for a count of 2: the user fixed one and met the same error again
    path = tmp_path / "two.py"
    path.write_text(TWO_USERS)
    (entry,) = scan(load_source(f"{path}:make_model")).unsupported
    assert entry.count == 2
    assert entry.module_path == "left, right", entry
