"""CLI smoke tests (profile, cache, devices) and the profile library objects."""

from __future__ import annotations

import json

import pytest

from devicefit.cli import main
from devicefit.profile import percentile_ci, profile_engine


def test_percentile_ci_brackets_the_quantile():
    import numpy as np

    x = np.random.default_rng(0).exponential(1.0, 2000)
    p = percentile_ci(x, 0.9)
    assert p.ci_low < p.value < p.ci_high
    assert p.ci_low < np.log(10) < p.ci_high  # the true p90 of Exp(1)
    assert percentile_ci(x[:50], 0.99).ci_high is None  # too few samples for a p99 upper bound


def test_profile_engine_keeps_raw_samples(small_pkg):
    import math

    import psutil

    rss_before_mb = psutil.Process().memory_info().rss / 1e6
    prof = profile_engine(
        small_pkg, "interp", reps=40, batch_sizes=(2,), max_in_flight=2, throughput_requests=8
    )
    assert prof.error is None and len(prof.latency.samples_ms) == 40
    assert prof.latency.p50.value <= prof.latency.p99.value
    # loads: a discarded warm-up, then best of 3 without the cache and best of 3 that each hit the cache
    # (what makes "cached" cached; comparing the two times would depend on the machine's load)
    assert prof.first_load_s is not None and prof.first_load_s > 0
    assert len(prof.uncached_load_samples_s) == 3 and prof.uncached_load_s == min(
        prof.uncached_load_samples_s
    )
    assert len(prof.cached_load_samples_s) == 3 and prof.cached_load_s == min(prof.cached_load_samples_s)
    assert prof.cached_load_hits == [True, True, True]
    modes = [(t.mode, t.level) for t in prof.throughput]
    assert modes == [("sync", 1), ("batch", 2), ("async", 1), ("async", 2)]
    assert [t.requests for t in prof.throughput] == [8, 8, 8, 8]  # each point ran what it reports
    assert all(math.isclose(t.per_second, t.requests / t.seconds) for t in prof.throughput)
    assert prof.peak_rss_mb >= rss_before_mb  # a peak is never below where the process started


def test_cli_profile_unknown_engine_is_exit_2_with_a_suggestion(small_pkg, capsys):
    assert main(["profile", str(small_pkg), "--engine", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown engine 'nope'" in err and "onnxruntime" in err
    assert main(["profile", str(small_pkg), "--engine", "intrp"]) == 2
    assert "did you mean 'interp'?" in capsys.readouterr().err
    assert main(["profile", str(small_pkg), "-c", "cpu"]) == 2
    assert "unknown compute unit 'cpu'" in capsys.readouterr().err


def test_cli_profile_no_spinner_when_not_a_terminal(small_pkg, capsys):
    argv = ["profile", str(small_pkg), "-e", "interp", "--reps", "3", "--requests", "2", "--batch-sizes", "1",
            "--max-in-flight", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    spinner = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    assert not spinner & set(captured.err) and "uncached load" not in captured.err
    assert "first load (new process)" in captured.out


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("ts") / "linear.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 2).eval(), torch.randn(1, 4)), str(path))
    return path


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_cli_profile_torchscript_with_input(torchscript_file, tmp_path, engine, capsys):
    import numpy as np

    argv = ["profile", str(torchscript_file), "-e", engine, "--reps", "3", "--requests", "2", "--batch-sizes", "2",
            "--max-in-flight", "1", "--json", str(tmp_path / "p.json")]  # fmt: skip
    # no --input: TorchScript records no shapes, so nothing can be measured: bad input (exit 2, one line, no
    # report written), not a verdict (1); tests/cli/test_profile_bad_input.py has the other bad models
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input" in err and "protobuf" not in err.lower()
    assert not (tmp_path / "p.json").exists()
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    for given in ("input:1x4", f"input={tmp_path / 'x.npy'}"):
        assert main([*argv, "--force", "--input", given]) == 0, capsys.readouterr()
        (p,) = json.loads((tmp_path / "p.json").read_text())["profiles"]
        assert p["error"] is None and len(p["latency"]["samples_ms"]) == 3
    capsys.readouterr()
    assert main([*argv, "--force", "--input", "input:100000x100000x100"]) == 2
    assert "over the 256 MiB limit for generated inputs" in capsys.readouterr().err


def test_cli_profile_json_html(small_onnx, tmp_path, capsys):
    j, h = tmp_path / "p.json", tmp_path / "p.html"
    rc = main(
        [
            "profile",
            str(small_onnx),
            "--reps",
            "30",
            "--requests",
            "8",
            "--batch-sizes",
            "2",
            "--max-in-flight",
            "2",
            "--json",
            str(j),
            "--html",
            str(h),
        ]
    )
    assert rc == 0
    data = json.loads(j.read_text())
    (p,) = data["profiles"]
    assert p["engine"] == "onnxruntime" and len(p["latency"]["samples_ms"]) == 30
    page = h.read_text()
    assert (
        page.count("<svg") == 2
        and "<script" not in page
        and "http://" not in page.replace("http://www.w3.org", "")
    )
    assert main(["profile", str(small_onnx), "--json", str(j)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err


def test_cli_profile_target_adds_device_bound(small_pkg, small_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide table: cells must not wrap for the text checks
    j, h = tmp_path / "p.json", tmp_path / "p.html"
    argv = ["profile", str(small_pkg), "-e", "interp", "--reps", "5", "--requests", "2", "--batch-sizes", "1",
            "--max-in-flight", "1", "--target", "iphone-12", "--json", str(j), "--html", str(h)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "roofline · iPhone 12" in out and "at best" in out and "(lower bound)" in out
    assert "not measurements" in out  # the caption says which rows are measured
    (bound,) = json.loads(j.read_text())["device_bounds"]
    assert bound["device"] == "iphone-12" and bound["best"]["at_best_ms"] > 0
    assert "not a measurement" in bound["note"]
    page = h.read_text()
    assert "Device lower bounds (roofline, not measured)" in page and "iPhone 12" in page
    assert main(["profile", str(small_onnx), "--target", "iphone-12"]) == 2  # the roofline reads Core ML
    assert "needs a Core ML model" in capsys.readouterr().err
    assert main(["profile", str(small_pkg), "--target", "iphone-99"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown device 'iphone-99'" in err and len(err.splitlines()) == 1


def test_cli_profile_bad_input(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope.onnx")]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main(["profile", str(tmp_path), "--batch-sizes", "a,b"]) == 2


def test_cli_cache_ls_clear(small_pkg, tmp_path, monkeypatch, capsys):
    from devicefit.engines import create

    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "c"))
    create("interp", small_pkg).load()
    capsys.readouterr()
    assert main(["cache", "ls", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [e["engine"] for e in listing["entries"]] == ["interp"]
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cache entry" in capsys.readouterr().out
    assert main(["cache", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []


def test_cli_devices(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["devices", "--json", str(out)]) == 0
    rows = {r["engine"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"torch", "interp", "onnxruntime", "coreml"}
    assert rows["interp"]["available"] is True and rows["onnxruntime"]["available"] is True


def test_cli_devices_catalog(tmp_path):
    pytest.importorskip("devicefit.analyze.catalog")
    out = tmp_path / "cat.json"
    assert main(["devices", "--catalog", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows and all("id" in r and "name" in r for r in rows)


def test_cli_profile_json_dash_is_stdout(small_onnx, tmp_path, capsys, monkeypatch):
    """`--json -` means stdout, as in every other command (it wrote a file named '-')."""
    monkeypatch.chdir(tmp_path)
    argv = ["profile", str(small_onnx), "--reps", "10", "--requests", "4", "--batch-sizes", "2"]
    assert main([*argv, "--max-in-flight", "1", "--json", "-"]) == 0
    captured = capsys.readouterr()
    (p,) = json.loads(captured.out)["profiles"]  # stdout is only the JSON: the tables went to stderr
    assert p["engine"] == "onnxruntime" and not (tmp_path / "-").exists()


def test_cli_cache_ls_json_to_a_file(small_pkg, tmp_path, monkeypatch, capsys):
    from devicefit.engines import create

    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "c"))
    create("interp", small_pkg).load()
    out = tmp_path / "cache.json"
    assert main(["cache", "ls", "--json", str(out)]) == 0
    assert [e["engine"] for e in json.loads(out.read_text())["entries"]] == ["interp"]
    assert main(["cache", "ls", "--json", str(out)]) == 2  # exists: --force, like every output
    assert main(["cache", "ls", "--json", str(out), "--force"]) == 0
