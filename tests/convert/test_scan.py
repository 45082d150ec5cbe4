"""One-pass scan: every unsupported op at once, with file:line and module path."""

from __future__ import annotations

import pytest

from devicefit.convert import ConversionError, ConvertOptions, convert, scan
from devicefit.errors import DevicefitError
from devicefit.sources import load_source
from tests.convert.models import HERE, spec


def _line_of(marker: str) -> int:
    lines = (HERE / "models.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def test_scan_lists_all_three_unsupported_ops():
    report = scan(load_source(spec("three_unsupported")))
    by_op = {u.op.split("::")[-1]: u for u in report.unsupported}
    assert set(by_op) == {"special_bessel_j1", "special_bessel_j0", "special_airy_ai"}
    assert by_op["special_bessel_j1"].location == f"models.py:{_line_of('LINE_J1')}"
    assert by_op["special_bessel_j0"].location == f"models.py:{_line_of('LINE_J0')}"
    assert by_op["special_airy_ai"].location == f"models.py:{_line_of('LINE_AIRY')}"
    assert all(u.hint for u in report.unsupported)
    assert [f.name for f in report.frontends] == ["torchscript", "torch.export"]
    assert not any(f.ok for f in report.frontends)
    assert not report.ok


def test_conversion_error_names_every_op_on_one_line():
    with pytest.raises(ConversionError) as info:
        convert(load_source(spec("three_unsupported")))
    message = str(info.value)
    assert "\n" not in message
    for op in ("bessel_j1", "bessel_j0", "airy_ai"):
        assert op in message
    assert isinstance(info.value, DevicefitError)
    assert len(info.value.scan.unsupported) == 3


def test_scan_reports_module_path_and_working_frontends():
    report = scan(load_source(spec("mha")))
    assert report.ok
    assert report.unsupported == []
    assert report.working_frontends == ["torchscript", "torch.export"]
    from devicefit.convert import RESCUES

    # an override (coremltools translates the op; devicefit fixes one case) is listed wherever its op occurs:
    # whether the case arises is known only once converted (convert() keeps the ones used)
    assert [op for op in report.rescued if not RESCUES[op].override] == ["_native_multi_head_attention"]


def test_module_path_of_unsupported_op_in_submodule(tmp_path):
    model = tmp_path / "nested.py"
    model.write_text(
        "import torch\n"
        "class Inner(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.special.airy_ai(torch.tanh(x) + 2)\n"
        "class Outer(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.block = torch.nn.Sequential(torch.nn.Identity(), Inner())\n"
        "    def forward(self, x):\n"
        "        return self.block(x)\n"
        "def make_model():\n"
        "    return Outer(), (torch.randn(2, 3),)\n"
    )
    source = load_source(str(model))
    [op] = [u for u in scan(source).unsupported]
    assert op.location == "nested.py:4"
    assert op.module_path == "block.1"
    with pytest.raises(ConversionError, match=r"airy_ai.*nested\.py:4"):
        convert(source, ConvertOptions(frontend="torchscript"))
