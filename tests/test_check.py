"""`devicefit check` end to end on a small model, CI gates, and bad inputs (exit 2, one line)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from devicefit.cli import main
from devicefit.errors import InputError
from devicefit.sources.data import from_arrays, generate, load_data, split_samples

MODEL = textwrap.dedent(
    """
    import torch

    def make_model():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 7))
        return net.eval(), torch.zeros(1, 6)
    """
)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """One real run of `devicefit check model.py -o out --data data.npz` (shared: conversion is slow)."""
    root = tmp_path_factory.mktemp("check")
    model = root / "model.py"
    model.write_text(MODEL)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 6)).astype(np.float32)
    np.savez(root / "data.npz", **{"input": x, "labels": rng.integers(0, 7, 12)})
    out = root / "out"
    code = main(
        [
            "check",
            str(model),
            "--data",
            str(root / "data.npz"),
            "-o",
            str(out),
            "--fail-on",
            "convert.ok=false",
        ]
    )
    return root, model, out, code


def _input_name(out):
    return json.loads((out / "report.json").read_text())["model"]["inputs"][0]["name"]


def test_check_writes_package_and_reports(checked, capsys):
    root, _, out, code = checked
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "model.mlpackage" / "Manifest.json").exists()
    assert (out / "report.html").read_text().count("<svg") == 3
    assert report["data"] == {"origin": str(root / "data.npz"), "samples": 12, "labels": True}
    assert report["options"]["deployment_target"] == "iOS17" and report["model"]["opset"] == "iOS17"
    assert report["ane"]["ops"] > 0 and report["latency"]["devices"]
    assert report["numerics"]["fp32"]["passed"] is True
    assert report["numerics"]["fp16"]["accuracy"]["value"] is not None
    assert report["size"]["parameters"] == 6 * 16 + 16 + 16 * 7 + 7
    assert report["size"]["package_bytes"] > 0
    assert report["numerics"]["trained"]["looks_untrained"] is True  # random weights
    assert any("untrained" in w for w in report["warnings"])


def test_gates_exit_1_with_reason(checked, tmp_path, capsys):
    _, model, _, _ = checked
    data = tmp_path / "d"
    data.mkdir()
    np.save(data / "input.npy", np.ones((2, 1, 6), dtype=np.float32))
    code = main(["check", str(model), "--data", str(data), "--json", str(tmp_path / "r.json"),
                 "--fail-on", "fp16.cosine_similarity<1.5", "--fail-on", "memory.fits=iphone-12"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "gate failed: fp16.cosine_similarity<1.5: fp16.cosine_similarity is" in err
    assert "memory.fits" not in err  # a tiny model fits the iPhone 12
    assert json.loads((tmp_path / "r.json").read_text())["data"]["samples"] == 2


def test_existing_core_ml_package_is_checked_without_reference(checked, tmp_path, capsys):
    _, _, out, _ = checked
    code = main(["check", str(out / "model.mlpackage"), "--samples", "3", "--json", str(tmp_path / "r.json")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["numerics"]["fp32"] is None
    assert report["numerics"]["fp16"]["reference"] == "interp-fp32"
    assert report["convert"]["skipped"] is True


def _exit2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_exit_2(checked, tmp_path, capsys):
    _, model, out, _ = checked
    assert "not found" in _exit2(["check", str(tmp_path / "missing.py")], capsys)
    assert "exists" in _exit2(["check", str(model), "-o", str(out)], capsys)
    assert "not KEY<OP>VALUE" in _exit2(["check", "--fail-on", "fp16"], capsys)
    assert "unknown device" in _exit2(["check", "--fail-on", "memory.fits=iphone-99"], capsys)
    assert "data" in _exit2(["check", str(model), "--data", str(tmp_path / "nope.npz")], capsys)
    np.savez(tmp_path / "wrong.npz", input=np.ones((3, 5), dtype=np.float32))
    assert "expected 1x6" in _exit2(["check", str(model), "--data", str(tmp_path / "wrong.npz")], capsys)
    bad = tmp_path / "bad.mlpackage"
    bad.mkdir()
    (bad / "Manifest.json").write_text("{not json")
    _exit2(["check", str(bad)], capsys)


def test_data_layouts():
    spec = [type("S", (), {"name": "x", "shape": (2, 3), "dtype": "float32"})()]
    assert len(split_samples("x", np.ones((2, 3)), (2, 3))) == 1
    assert len(split_samples("x", np.ones((5, 2, 3)), (2, 3))) == 5
    assert len(split_samples("x", np.ones((6, 3)), (2, 3))) == 3  # batches stacked on the batch axis
    with pytest.raises(InputError, match="expected 2x3"):
        split_samples("x", np.ones((5, 3)), (2, 3))
    ds = from_arrays(
        {"x": np.ones((4, 2, 3), dtype=np.float64), "labels": np.arange(8)}, spec, "t", samples=2
    )
    assert len(ds.feeds) == 2 and ds.feeds[0]["x"].dtype == np.float32
    assert ds.labels is not None and list(ds.labels) == [0, 1, 2, 3]  # two label rows per sample
    with pytest.raises(InputError, match="labels"):
        from_arrays({"x": np.ones((4, 2, 3)), "labels": np.arange(3)}, spec, "t")
    assert generate(spec, 3).feeds[2]["x"].shape == (2, 3)


def test_data_factory_and_pickle_refusal(tmp_path):
    spec = [type("S", (), {"name": "x", "shape": (1, 2), "dtype": "float32"})()]
    f = tmp_path / "d.py"
    f.write_text(
        "import numpy as np\ndef make_data():\n    return np.zeros((3, 1, 2)), np.array([0, 1, 1])\n"
    )
    ds = load_data(f"{f}:make_data", spec)
    assert len(ds.feeds) == 3 and ds.labels is not None and ds.labels.tolist() == [0, 1, 1]
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([{"a": 1}] * 2, dtype=object))
    with pytest.raises(InputError, match="no pickles"):
        load_data(obj, spec)


def test_conversion_failure_is_reported_and_exits_1(checked, tmp_path, monkeypatch, capsys):
    import devicefit.convert as conv
    from devicefit.convert import ConversionError, ScanReport, UnsupportedOp

    _, model, _, _ = checked
    scan = ScanReport()
    scan.unsupported.append(UnsupportedOp("aten::frobnicate", "model.py:3", "net.0", "rewrite it", 2))

    def failing_convert(source, options=None):  # stand-in: the real converter succeeds on this model
        raise ConversionError("cannot convert model.py: 1 unsupported op (aten::frobnicate)", scan)

    monkeypatch.setattr(conv, "convert", failing_convert)
    out = tmp_path / "o"
    monkeypatch.setenv("COLUMNS", "300")  # the table checks below look for whole cells
    assert main(["check", str(model), "-o", str(out), "--samples", "2"]) == 1
    printed = capsys.readouterr().out
    assert "1 unsupported op(s): aten::frobnicate" in printed
    assert "ops coremltools cannot convert" in printed and "model.py:3" in printed and "rewrite it" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["convert"]["ok"] is False
    assert report["convert"]["package"] is None  # nothing was written
    assert report["convert"]["unsupported"][0]["op"] == "aten::frobnicate"
    assert report["verdicts"]["numerics"]["status"] == "skipped"
    assert report["numerics"] is None and report["memory"] is None
    assert "aten::frobnicate" in (out / "report.html").read_text()
    assert not (out / "model.mlpackage").exists()
    assert main(["check", str(model), "--samples", "2", "--fail-on", "convert.ok=false"]) == 1
    assert "gate failed: convert.ok=false" in capsys.readouterr().err


def test_labels_must_be_one_index_per_sample_row():
    spec = [type("S", (), {"name": "x", "shape": (1, 3), "dtype": "float32"})()]
    x = np.ones((5, 1, 3), np.float32)
    with pytest.raises(InputError, match="one-hot"):
        from_arrays({"x": x, "labels": np.eye(4, dtype=np.int64)[[0, 1, 2, 3, 0]]}, spec, "t")
    with pytest.raises(InputError, match="give exactly 5 labels"):
        from_arrays({"x": x, "labels": np.arange(10)}, spec, "t")  # a whole multiple is still wrong
    ds = from_arrays({"x": x, "labels": np.arange(5).reshape(5, 1)}, spec, "t")
    assert ds.labels is not None and ds.labels.tolist() == [0, 1, 2, 3, 4]
