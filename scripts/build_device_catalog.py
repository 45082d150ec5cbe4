"""Generator: docs/research/apple-devices.csv -> src/devicefit/data/apple_devices.csv, one row per device.

The curated per-chip figures below were read off the shared CSV (each must appear in its cell; the
catalog test checks every value traces back).
Run: python scripts/build_device_catalog.py src/devicefit/data/apple_devices.csv
"""

import csv
import os
import re
import sys

SHARED = os.environ.get(
    "DEVICEFIT_SHARED_CSV",
    os.path.join(os.path.dirname(__file__), "..", "docs", "research", "apple-devices.csv"),
)
rows = {r["chip"]: r for r in csv.DictReader(open(SHARED, newline=""))}

# chip-level performance values: (field, column, value) where value must appear in the cell
# Performance peaks: best configuration's figure (lower bounds want peaks).
CHIP = {
    # chip: (ne_cores, ne_tops, prec_label, gpu_cores, gpu_tflops, bw)
    "A11 Bionic": (2, 0.6, "FP16", 3, None, None),
    "A12 Bionic": (8, 5, "unstated", 4, None, None),
    "A12X / A12Z Bionic": (8, None, "unstated", None, None, None),
    "A13 Bionic": (8, None, "unstated", 4, 0.63, 34.1),
    "A14 Bionic": (16, 11, "unstated", 4, 0.65, 34.1),
    "M1": (16, 11, "unstated", 7, 2.6, 68.2),
    "M1 Pro": (16, 11, "unstated", 14, 5.2, 200),
    "M1 Max": (16, 11, "unstated", 24, 10.4, 400),
    "M1 Ultra": (32, 22, "unstated", 48, 21.2, 800),
    "A15 Bionic": (16, 15.8, "FP16", None, None, None),
    "A16 Bionic": (16, 17, "unstated", 5, 1.79, 51.2),
    "M2": (16, 15.8, "unstated", 8, None, 100),
    "M2 Pro": (16, 15.8, "unstated", 16, None, 200),
    "M2 Max": (16, 15.8, "unstated", 30, None, 400),
    "M2 Ultra": (32, 31.6, "unstated", 60, 27.2, 800),
    "A17 Pro": (16, 35, "unstated (press: INT8)", 6, 2.15, None),
    "M3": (16, 18, "unstated", 8, None, 100),
    "M3 Pro": (16, 18, "unstated", 14, 6.44, 150),
    "M3 Max": (16, 18, "unstated", 30, None, 400),
    "M3 Ultra": (32, 36, "unstated", 60, None, 819),
    "A18": (16, 35, "unstated (press: INT8)", 5, None, None),
    "A18 Pro": (16, 35, "unstated (press: INT8)", 6, None, None),
    "M4": (16, 38, "unstated (press: INT8)", None, 3.76, 120),
    "M4 Pro": (16, 38, "unstated (press: INT8)", None, None, 273),
    "M4 Max": (16, 38, "unstated (press: INT8)", 32, 13.74, 546),
    "A19 / A19 Pro": (16, None, "unstated", None, None, None),
    "M5": (16, None, "unstated", None, None, None),
}
COLS = (
    "neural_engine_cores",
    "ne_peak_tops",
    "ne_tops_precision",
    "gpu_cores",
    "gpu_fp32_tflops",
    "mem_bandwidth_gbps",
)
FIELDS = ("ne_cores", "ne_tops", "ne_tops_precision", "gpu_cores", "gpu_fp32_tflops", "mem_bandwidth_gbps")

# devices: (id, name, chip, kind, ram_fragment, ram_gb, jetsam_fragment, jetsam_mb, extra overrides {field: (fragment, value)}, year)
D = []


def dev(id, name, chip, kind, ram=None, ram_gb=None, jet=None, jet_mb=None, year=None, **over):
    D.append(
        dict(
            id=id,
            name=name,
            chip=chip,
            kind=kind,
            ram=ram,
            ram_gb=ram_gb,
            jet=jet,
            jet_mb=jet_mb,
            year=year,
            over=over,
        )
    )


dev("iphone-8", "iPhone 8", "A11 Bionic", "iphone", "iPhone 8: 2*", 2, "iPhone 8: 1364 of 1990 MB", 1364)
dev("iphone-8-plus", "iPhone 8 Plus", "A11 Bionic", "iphone", "iPhone 8 Plus: 3*", 3)
dev("iphone-x", "iPhone X", "A11 Bionic", "iphone", "iPhone X: 3*", 3, "iPhone X: 1392 of 2785 MB", 1392)
dev("iphone-xs", "iPhone XS", "A12 Bionic", "iphone", "XS: 4*", 4, "XS: 2040 of 3754 MB", 2040)
dev(
    "iphone-xs-max", "iPhone XS Max", "A12 Bionic", "iphone", "XS Max: 4*", 4, "XS Max: 2039 of 3735 MB", 2039
)
dev("iphone-xr", "iPhone XR", "A12 Bionic", "iphone", "XR: 3*", 3, "XR: 1792 of 2813 MB", 1792)
dev("ipad-air-3rd-gen", "iPad Air (3rd gen)", "A12 Bionic", "ipad")
dev("ipad-mini-5th-gen", "iPad mini (5th gen)", "A12 Bionic", "ipad")
dev("ipad-8th-gen", "iPad (8th gen)", "A12 Bionic", "ipad")
dev(
    "ipad-pro-11-1st-gen",
    "iPad Pro 11 (1st gen, 2018)",
    "A12X / A12Z Bionic",
    "ipad",
    "iPad Pro 11 (2018): ~4* (3769 MB reported)",
    4,
    "iPad Pro 11 (2018): 2858 of 3769 MB",
    2858,
    year=2018,
)
dev("ipad-pro-11-2nd-gen", "iPad Pro 11 (2nd gen, 2020)", "A12X / A12Z Bionic", "ipad", year=2020)
dev(
    "ipad-pro-12-9-3rd-gen-1tb",
    "iPad Pro 12.9 (3rd gen, 2018, 1TB)",
    "A12X / A12Z Bionic",
    "ipad",
    "12.9 (2018, 1TB): ~6* (5650 MB reported)",
    6,
    "iPad Pro 12.9 (2018, 1TB): 4598 of 5650 MB",
    4598,
    year=2018,
)
dev("ipad-pro-12-9-4th-gen", "iPad Pro 12.9 (4th gen, 2020)", "A12X / A12Z Bionic", "ipad", year=2020)
dev(
    "iphone-11",
    "iPhone 11",
    "A13 Bionic",
    "iphone",
    "iPhone 11/11 Pro/11 Pro Max: 4*",
    4,
    "iPhone 11: 2068 of 3844 MB",
    2068,
)
dev("iphone-11-pro", "iPhone 11 Pro", "A13 Bionic", "iphone", "iPhone 11/11 Pro/11 Pro Max: 4*", 4)
dev(
    "iphone-11-pro-max",
    "iPhone 11 Pro Max",
    "A13 Bionic",
    "iphone",
    "iPhone 11/11 Pro/11 Pro Max: 4*",
    4,
    "11 Pro Max: 2067 of 3740 MB",
    2067,
)
dev("iphone-se-2nd-gen", "iPhone SE (2nd gen)", "A13 Bionic", "iphone", "SE (2nd): 3*", 3)
dev("ipad-9th-gen", "iPad (9th gen)", "A13 Bionic", "ipad")
dev("iphone-12-mini", "iPhone 12 mini", "A14 Bionic", "iphone", "12/12 mini: 4*", 4)
dev("iphone-12", "iPhone 12", "A14 Bionic", "iphone", "12/12 mini: 4*", 4)
dev("iphone-12-pro", "iPhone 12 Pro", "A14 Bionic", "iphone", "12 Pro/Pro Max: 6*", 6)
dev("iphone-12-pro-max", "iPhone 12 Pro Max", "A14 Bionic", "iphone", "12 Pro/Pro Max: 6*", 6)
dev("ipad-air-4th-gen", "iPad Air (4th gen)", "A14 Bionic", "ipad", "iPad Air 4: 4*", 4)
dev("ipad-10th-gen", "iPad (10th gen)", "A14 Bionic", "ipad")
dev("mac-m1", "Mac with M1", "M1", "mac", "Mac: 8 or 16*", 8)
dev(
    "ipad-pro-m1",
    "iPad Pro 11/12.9 (M1, 2021)",
    "M1",
    "ipad",
    "iPad Pro 2021: 8 (128-512GB)* / 16 (1-2TB)*",
    8,
    "iPadOS 15 + increased-memory-limit entitlement: up to 6 GB (8 GB model) / 12 GB (16 GB model)*",
    None,
)
dev(
    "ipad-air-m1",
    "iPad Air (5th gen, M1, 2022)",
    "M1",
    "ipad",
    "iPad Air 5: 8*",
    8,
    "iPadOS 15 + increased-memory-limit entitlement: up to 6 GB (8 GB model) / 12 GB (16 GB model)*",
    None,
)
dev("mac-m1-pro", "Mac with M1 Pro", "M1 Pro", "mac", "up to 32*", None)
dev("mac-m1-max", "Mac with M1 Max", "M1 Max", "mac", "up to 64*", None)
dev("mac-m1-ultra", "Mac with M1 Ultra", "M1 Ultra", "mac", "up to 128", None)
dev(
    "iphone-13-mini",
    "iPhone 13 mini",
    "A15 Bionic",
    "iphone",
    "13/13 mini: 4*",
    4,
    gpu_cores=("4 (iPhone 13/13 mini)*", 4),
)
dev(
    "iphone-13",
    "iPhone 13",
    "A15 Bionic",
    "iphone",
    "13/13 mini: 4*",
    4,
    gpu_cores=("4 (iPhone 13/13 mini)*", 4),
)
dev(
    "iphone-13-pro",
    "iPhone 13 Pro",
    "A15 Bionic",
    "iphone",
    "13 Pro/Pro Max: 6*",
    6,
    gpu_cores=("5 (13 Pro/Pro Max)*", 5),
)
dev(
    "iphone-13-pro-max",
    "iPhone 13 Pro Max",
    "A15 Bionic",
    "iphone",
    "13 Pro/Pro Max: 6*",
    6,
    gpu_cores=("5 (13 Pro/Pro Max)*", 5),
)
dev("iphone-se-3rd-gen", "iPhone SE (3rd gen)", "A15 Bionic", "iphone", "SE (3rd): 4*", 4)
dev("iphone-14", "iPhone 14", "A15 Bionic", "iphone", "14/14 Plus: 6*", 6)
dev("iphone-14-plus", "iPhone 14 Plus", "A15 Bionic", "iphone", "14/14 Plus: 6*", 6)
dev("ipad-mini-6th-gen", "iPad mini (6th gen)", "A15 Bionic", "ipad", "iPad mini 6: 4*", 4)
for i, n in (
    ("iphone-14-pro", "iPhone 14 Pro"),
    ("iphone-14-pro-max", "iPhone 14 Pro Max"),
    ("iphone-15", "iPhone 15"),
    ("iphone-15-plus", "iPhone 15 Plus"),
):
    dev(i, n, "A16 Bionic", "iphone", "6*", 6)
dev("mac-m2", "Mac with M2", "M2", "mac", "Mac: up to 24* (8/16/24)", 8)
dev(
    "ipad-pro-m2",
    "iPad Pro 11/12.9 (M2, 2022)",
    "M2",
    "ipad",
    "iPad Pro 2022: 8 (128-512GB)* / 16 (1-2TB)*",
    8,
)
dev("ipad-air-m2", "iPad Air 11/13 (M2, 2024)", "M2", "ipad", "iPad Air 2024: 8*", 8)
dev("apple-vision-pro", "Apple Vision Pro (M2)", "M2", "vision")
dev("mac-m2-pro", "Mac with M2 Pro", "M2 Pro", "mac", "up to 32*", None)
dev("mac-m2-max", "Mac with M2 Max", "M2 Max", "mac", "up to 96*", None)
dev("mac-m2-ultra", "Mac with M2 Ultra", "M2 Ultra", "mac", "up to 192", None)
dev("iphone-15-pro", "iPhone 15 Pro", "A17 Pro", "iphone", "8*", 8)
dev("iphone-15-pro-max", "iPhone 15 Pro Max", "A17 Pro", "iphone", "8*", 8)
dev("ipad-mini-a17-pro", "iPad mini (A17 Pro, 2024)", "A17 Pro", "ipad", "8*", 8)
dev("mac-m3", "Mac with M3", "M3", "mac", "up to 24*", None)
dev("ipad-air-m3", "iPad Air 11/13 (M3, 2025)", "M3", "ipad")
dev("mac-m3-pro", "Mac with M3 Pro", "M3 Pro", "mac", "18 or 36*", 18)
dev("mac-m3-max", "Mac with M3 Max", "M3 Max", "mac", "up to 128*", None)
dev(
    "mac-m3-ultra",
    "Mac with M3 Ultra",
    "M3 Ultra",
    "mac",
    "up to 256 (60-core GPU cfg)* / up to 512 (80-core GPU cfg)*",
    None,
)
dev("iphone-16", "iPhone 16", "A18", "iphone", "8* (iPhone 16/16 Plus)", 8)
dev("iphone-16-plus", "iPhone 16 Plus", "A18", "iphone", "8* (iPhone 16/16 Plus)", 8)
dev("iphone-16e", "iPhone 16e (2025)", "A18", "iphone")
dev("iphone-16-pro", "iPhone 16 Pro", "A18 Pro", "iphone", "8*", 8)
dev("iphone-16-pro-max", "iPhone 16 Pro Max", "A18 Pro", "iphone", "8*", 8)
dev(
    "ipad-pro-m4",
    "iPad Pro 11/13 (M4, 2024)",
    "M4",
    "ipad",
    "iPad Pro 2024: 8 (256/512GB)* / 16 (1/2TB)*",
    8,
    gpu_cores=("10* (iPad Pro)", 10),
)
dev("mac-m4", "Mac with M4", "M4", "mac")
dev("mac-m4-pro", "Mac with M4 Pro", "M4 Pro", "mac")
dev("mac-m4-max", "Mac with M4 Max", "M4 Max", "mac", "up to 128*", None)
for i, n in (
    ("iphone-17", "iPhone 17"),
    ("iphone-17e", "iPhone 17e"),
    ("iphone-air", "iPhone Air"),
    ("iphone-17-pro", "iPhone 17 Pro"),
    ("iphone-17-pro-max", "iPhone 17 Pro Max"),
):
    dev(i, n, "A19 / A19 Pro", "iphone")
dev("ipad-pro-m5", "iPad Pro 11/13 (M5, 2025)", "M5", "ipad")
dev("mac-m5", "Mac with M5", "M5", "mac")
dev("apple-vision-pro-m5", "Apple Vision Pro (M5, 2025)", "M5", "vision")


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


OUT_FIELDS = [
    "id",
    "name",
    "chip",
    "kind",
    "year",
    "ram_gb",
    "app_memory_budget_mb",
    "budget_derivation",
    "ne_cores",
    "ne_tops",
    "ne_tops_precision",
    "gpu_cores",
    "gpu_fp32_tflops",
    "mem_bandwidth_gbps",
    "secondary",
    "models_source",
    "year_source",
    "ram_gb_source",
    "app_memory_budget_mb_source",
    "ne_cores_source",
    "ne_tops_source",
    "ne_tops_precision_source",
    "gpu_cores_source",
    "gpu_fp32_tflops_source",
    "mem_bandwidth_gbps_source",
    "references",
]
w = csv.DictWriter(open(sys.argv[1], "w", newline=""), fieldnames=OUT_FIELDS, lineterminator="\n")
w.writeheader()
assert set(CHIP) == set(rows), set(rows) ^ set(CHIP)
for d in D:
    r = rows[d["chip"]]
    out = {k: "" for k in OUT_FIELDS}
    sec = set()
    out.update(
        id=d["id"],
        name=d["name"],
        chip=d["chip"],
        kind=d["kind"],
        models_source=r["example_devices"],
        references=r["sources"],
    )
    year = d["year"] or int(r["year"])
    out["year"] = year
    out["year_source"] = r["year"]
    assert str(year) in r["year"]
    if d["ram"]:
        assert d["ram"] in r["device_ram_gb"], (d["id"], d["ram"])
        out["ram_gb_source"] = d["ram"]
        if d["ram_gb"] is not None:
            out["ram_gb"] = fmt(d["ram_gb"])
            if "*" in d["ram"]:
                sec.add("ram_gb")
    for f, col, v in zip(FIELDS, COLS, CHIP[d["chip"]]):
        cell = r[col]
        frag = cell
        if f in d["over"]:
            frag, v = d["over"][f]
            assert frag in cell
        out[f + "_source"] = frag
        if f == "ne_tops_precision":
            out[f] = v
            continue
        if v is not None:
            assert re.search(r"(?<![\d.])" + re.escape(fmt(v)) + r"(?![\d])", frag), (d["id"], f, v, frag)
            out[f] = fmt(v)
            if "*" in frag:
                sec.add(f)
    # budget
    ram = d["ram_gb"]
    notes = r["app_memory_limit_notes"]
    if d["jet_mb"] is not None:
        assert d["jet"] in notes and str(d["jet_mb"]) in d["jet"]
        out["app_memory_budget_mb"] = fmt(d["jet_mb"])
        out["budget_derivation"] = (
            f"measured per-app jetsam limit* ({d['jet']}; Stack Overflow 5887248 table) [S]"
        )
        out["app_memory_budget_mb_source"] = "Observed jetsam limit* " + d["jet"]
        sec.add("app_memory_budget_mb")
    elif d["kind"] == "mac":
        if ram is not None:
            out["app_memory_budget_mb"] = fmt(ram * 1024)
            out["budget_derivation"] = (
                f"rule: macOS has no per-app jetsam limit; budget = device RAM ({fmt(ram)} GB from '{d['ram']}', smallest stated configuration, x 1024; beyond it the system swaps)"
            )
            if "ram_gb" in sec:
                sec.add("app_memory_budget_mb")
        else:
            out["budget_derivation"] = (
                "unknown: no RAM figure for the smallest configuration in the source table"
            )
    else:
        extra = f"; with the increased-memory-limit entitlement: {d['jet']}" if d["jet"] else ""
        if d["jet"]:
            assert d["jet"] in notes
            out["app_memory_budget_mb_source"] = d["jet"]
        if ram is not None:
            out["app_memory_budget_mb"] = fmt(ram * 1024 / 2)
            out["budget_derivation"] = (
                f"rule of thumb: about half the device RAM ({fmt(ram)} GB from '{d['ram']}', x 1024 / 2), per ane-notes.md 'App memory on iOS' (practice, no measurement for this device){extra}"
            )
            if "ram_gb" in sec:
                sec.add("app_memory_budget_mb")
        else:
            out["budget_derivation"] = "unknown: no RAM figure for this device in the source table" + extra
    out["secondary"] = ";".join(sorted(sec))
    w.writerow(out)
print(len(D), "devices")
