"""The device catalog: API, lookups, and that every figure traces back to the shared research table."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import pytest

from devicefit.analyze import catalog
from devicefit.analyze.catalog import Device, get_device, load_catalog
from devicefit.errors import InputError

# the research table the package data is derived from, kept in the repository with its sources
SHARED_CSV = Path(__file__).resolve().parents[2] / "docs" / "research" / "apple-devices.csv"
COLUMN = {
    "year": "year",
    "ram_gb": "device_ram_gb",
    "ne_cores": "neural_engine_cores",
    "ne_tops": "ne_peak_tops",
    "ne_tops_precision": "ne_tops_precision",
    "gpu_cores": "gpu_cores",
    "gpu_fp32_tflops": "gpu_fp32_tflops",
    "mem_bandwidth_gbps": "mem_bandwidth_gbps",
    "app_memory_budget_mb": "app_memory_limit_notes",
    "models": "example_devices",
}


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def test_catalog_has_one_row_per_device_with_unique_ids():
    devices = load_catalog()
    ids = [d.id for d in devices]
    assert len(ids) == len(set(ids))
    assert len(devices) >= 60
    assert {"iphone-12", "iphone-15-pro", "ipad-pro-m4", "mac-m2", "iphone-16-pro", "mac-m4-max"} <= set(ids)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)


def test_known_figures_and_secondary_marks():
    a15 = get_device("iphone-13")
    assert (a15.ne_cores, a15.ne_tops, a15.ne_tops_precision) == (16, 15.8, "FP16")
    assert "ne_tops" not in a15.secondary  # Apple's own figure
    assert "ram_gb" in a15.secondary and a15.sources["ram_gb"].endswith("*")
    assert "[P]" in a15.sources["references"]
    pro = get_device("iphone-15-pro")
    assert pro.ne_tops == 35 and "INT8" in pro.ne_tops_precision and "ne_tops" in pro.secondary
    assert get_device("iphone-13-pro").gpu_cores == 5 and get_device("iphone-14").gpu_cores is None


def test_budget_measured_jetsam_or_stated_rule():
    x = get_device("iphone-x")
    assert x.app_memory_budget_mb == 1392 and "jetsam" in x.budget_derivation
    twelve = get_device("iPhone 12")
    assert twelve.app_memory_budget_mb == 4 * 1024 / 2 and "half" in twelve.budget_derivation
    assert get_device("mac-m2").app_memory_budget_mb == 8 * 1024
    unknown = get_device("ipad-10th-gen")
    assert unknown.ram_gb is None and unknown.app_memory_budget_mb is None
    assert "unknown" in unknown.budget_derivation


def test_missing_figures_stay_none():
    a19 = get_device("iphone-17-pro")
    assert a19.ne_tops is None and a19.ram_gb is None and a19.gpu_fp32_tflops is None
    assert get_device("mac-m1-ultra").ram_gb is None  # "up to 128" is not the smallest configuration


def test_lookup_is_case_insensitive_by_id_or_name():
    assert get_device("IPAD-PRO-M4").chip == "M4"
    assert get_device("ipad pro 11/13 (m4, 2024)").id == "ipad-pro-m4"


def test_unknown_device_is_one_line_input_error_listing_ids():
    with pytest.raises(InputError) as e:
        get_device("pixel-8")
    msg = str(e.value)
    assert "\n" not in msg and "iphone-15-pro" in msg and "pixel-8" in msg


def test_device_is_frozen_and_asdict_works():
    dev = load_catalog()[0]
    assert isinstance(dev, Device)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.ram_gb = 1.0  # type: ignore[misc]
    d = dataclasses.asdict(dev)
    assert {"id", "ne_tops", "sources", "secondary", "budget_derivation"} <= set(d)


def test_research_table_is_in_the_repository():
    assert SHARED_CSV.is_file()


def test_every_package_value_traces_back_to_the_shared_csv():
    shared = {r["chip"]: r for r in csv.DictReader(SHARED_CSV.open(newline=""))}
    assert len(shared) == 27  # 28 lines with the header
    chips_used = set()
    for dev in load_catalog():
        row = shared[dev.chip]
        chips_used.add(dev.chip)
        assert dev.sources["references"] == row["sources"]
        for fld, col in COLUMN.items():
            src = dev.sources.get(fld)
            value = getattr(dev, fld, None)
            if src is not None:
                text = src.removeprefix("Observed jetsam limit* ") if fld == "app_memory_budget_mb" else src
                assert text in row[col], (dev.id, fld, src)
                assert ("*" in src) <= (fld in dev.secondary or value is None or fld == "models"), (
                    dev.id,
                    fld,
                )
            if fld in ("ne_tops_precision", "models", "app_memory_budget_mb") or value is None:
                continue
            assert src is not None, (dev.id, fld)
            assert re.search(rf"(?<![\d.]){re.escape(_fmt(value))}(?!\d)", src), (dev.id, fld, value, src)
        budget = dev.app_memory_budget_mb
        if budget is None:
            continue
        if dev.budget_derivation.startswith("measured"):
            assert f"{_fmt(budget)} of " in row["app_memory_limit_notes"], dev.id
        elif dev.kind == "mac":
            assert budget == dev.ram_gb * 1024
        else:
            assert budget == dev.ram_gb * 1024 / 2
    assert chips_used == set(shared)


def test_data_file_is_package_data():
    from importlib import resources

    assert resources.files("devicefit.data").joinpath(catalog.DATA_FILE).is_file()


def test_catalog_json_has_lists_not_python_reprs(tmp_path, capsys):
    """Issue 12: ``devices --catalog --json`` wrote ``"secondary": "frozenset({...})"``."""
    import json

    from devicefit.cli import main

    out = tmp_path / "catalog.json"
    assert main(["devices", "--catalog", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    a15 = next(r for r in rows if r["id"] == "iphone-13")
    assert isinstance(a15["secondary"], list) and "ram_gb" in a15["secondary"]
    assert a15["secondary"] == sorted(a15["secondary"])
    assert "frozenset" not in out.read_text()


def test_catalog_table_readable_at_80_columns(monkeypatch, capsys):
    """Issue 12: at 80 columns the catalog table split device ids across lines."""
    from devicefit.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["devices", "--catalog"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith(("│", "┃", "┏", "└"))]
    assert table and max(len(line) for line in table) <= 80
    first_cells = {line.split("│")[1].strip() for line in table if line.startswith("│")}
    assert {d.id for d in load_catalog()} <= first_cells  # every id whole, on one line


def test_an_unknown_device_lists_its_familys_ids_not_the_whole_catalog():
    """The error listed all 74 ids on one line; now the family the text names, and where the rest are."""
    with pytest.raises(InputError) as e:
        get_device("iphone-99")
    msg = str(e.value)
    assert "unknown device 'iphone-99'" in msg and "iphone-12" in msg and "iphone-17-pro-max" in msg
    assert "mac-m1" not in msg and "ipad" not in msg.split(";")[1]
    assert "devicefit devices --catalog" in msg and "\n" not in msg
    assert "did you mean" not in msg  # 'iphone-x' and 'iphone-8' were offered: the family's list says more
    with pytest.raises(InputError, match=r"did you mean 'iphone-15-pro-max'\?\); iphone devices"):
        get_device("iphone-15-pro-maxx")
    with pytest.raises(InputError, match=r"known devices: iphone-8, .*mac-m5"):
        get_device("pixel-9")  # no such family: the whole list
    with pytest.raises(InputError, match=r"looks like a deployment target: pass --deployment-target iOS17"):
        get_device("iOS17")


def test_a_gate_naming_an_unknown_device_reads_like_the_target_error():
    from devicefit.report.gates import check_devices, parse_gate

    ids = [d.id for d in load_catalog()]
    with pytest.raises(InputError) as e:
        check_devices([parse_gate("memory.fits=ipad-pro-m9")], ids)
    msg = str(e.value)
    assert msg.startswith("--fail-on 'memory.fits=ipad-pro-m9': unknown device 'ipad-pro-m9'")
    assert "ipad-pro-m4" in msg and "iphone-15" not in msg
