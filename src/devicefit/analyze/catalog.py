"""Apple device catalog: one row per device, every figure traceable to its source.

The package data ``devicefit/data/apple_devices.csv`` is derived from the research table
``apple-devices.csv`` (one row per chip) by expanding each chip's example devices. Each numeric field
keeps the exact text it came from (``<field>_source``) and the chip's references with their ``[P]``
(primary: Apple) / ``[S]`` (secondary) tags; a trailing ``*`` marks a secondary source, and the field is
then listed in :attr:`Device.secondary`. A figure the sources do not give is ``None``, never a guess.

Where a cell lists several configurations, RAM and GPU core counts take the *smallest* stated configuration
(a fit check wants the worst case; "up to N" alone gives ``None``), while peak figures (TOPS, TFLOPS,
bandwidth) take the *best* stated configuration (latency lower bounds want peaks). ``year`` is the chip's
introduction year from the table.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, field
from importlib import resources

from devicefit.errors import InputError

__all__ = ["DATA_FILE", "NUMERIC_FIELDS", "Device", "get_device", "load_catalog"]

DATA_FILE = "apple_devices.csv"
NUMERIC_FIELDS = (
    "year",
    "ram_gb",
    "app_memory_budget_mb",
    "ne_cores",
    "ne_tops",
    "gpu_cores",
    "gpu_fp32_tflops",
    "mem_bandwidth_gbps",
)
_INT_FIELDS = frozenset({"year", "ne_cores", "gpu_cores"})
_SOURCE_FIELDS = (*NUMERIC_FIELDS, "ne_tops_precision", "models")


@dataclass(frozen=True)
class Device:
    """One Apple device with its chip's published figures.

    Attributes:
        id: slug such as ``"iphone-15-pro"``, ``"ipad-pro-m4"`` or ``"mac-m2"``.
        name: display name.
        chip: chip name as in the source table (``"A17 Pro"``, ``"M2"``).
        kind: ``"iphone"``, ``"ipad"``, ``"mac"`` or ``"vision"``.
        year: the chip's introduction year.
        ram_gb: device RAM (smallest stated configuration), ``None`` when not found.
        app_memory_budget_mb: per-app memory budget; see ``budget_derivation``.
        budget_derivation: how the budget was derived and from what source.
        ne_cores: Neural Engine cores.
        ne_tops: Neural Engine peak, trillions of operations per second, as published.
        ne_tops_precision: the precision basis of ``ne_tops``: ``"FP16"``, ``"unstated"`` or
            ``"unstated (press: INT8)"``.
        gpu_cores: GPU cores (smallest stated configuration).
        gpu_fp32_tflops: GPU fp32 peak (best stated configuration; often a third-party estimate).
        mem_bandwidth_gbps: unified memory bandwidth, GB/s (best stated configuration).
        sources: field name -> the source text the value came from (with ``*`` marks), plus
            ``"references"``: the chip's source list with ``[P]``/``[S]`` tags.
        secondary: names of fields whose value came from a secondary source.
    """

    id: str
    name: str
    chip: str
    year: int | None
    ram_gb: float | None
    app_memory_budget_mb: float | None
    budget_derivation: str
    ne_cores: int | None
    ne_tops: float | None
    ne_tops_precision: str
    gpu_cores: int | None
    gpu_fp32_tflops: float | None
    mem_bandwidth_gbps: float | None
    sources: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    secondary: frozenset[str] = frozenset()
    kind: str = ""

    @property
    def ne_usable_by_core_ml(self) -> bool:
        """False where the sources say Core ML cannot run models on the chip's Neural Engine (the A11's).

        The fact is read from the research table's precision cell (``sources["ne_tops_precision"]``), where
        it is recorded with its source.
        """
        return "not usable by core ml" not in self.sources.get("ne_tops_precision", "").lower()


def _number(text: str, name: str) -> float | int | None:
    if not text:
        return None
    return int(text) if name in _INT_FIELDS else float(text)


def _device_from_row(row: dict[str, str]) -> Device:
    sources = {f: row[f"{f}_source"] for f in _SOURCE_FIELDS if row.get(f"{f}_source")}
    sources["references"] = row["references"]
    nums = {f: _number(row[f], f) for f in NUMERIC_FIELDS}
    return Device(
        id=row["id"],
        name=row["name"],
        chip=row["chip"],
        kind=row["kind"],
        budget_derivation=row["budget_derivation"],
        ne_tops_precision=row["ne_tops_precision"],
        sources=sources,
        secondary=frozenset(s for s in row["secondary"].split(";") if s),
        **nums,  # type: ignore[arg-type]
    )


@functools.cache
def _catalog() -> tuple[Device, ...]:
    text = resources.files("devicefit.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return tuple(_device_from_row(r) for r in csv.DictReader(io.StringIO(text)))


def load_catalog() -> list[Device]:
    """All devices of the catalog, in table order (chip generation, then device)."""
    return list(_catalog())


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


def get_device(id_or_name: str) -> Device:
    """The device whose id or name matches ``id_or_name`` (case-insensitive).

    Raises:
        InputError: no device matches; the message lists the known ids.
    """
    want = _norm(id_or_name)
    for dev in _catalog():
        if want in (_norm(dev.id), _norm(dev.name)):
            return dev
    raise unknown_device(id_or_name)


def unknown_device(text: str, context: str = "") -> InputError:
    """The one-line error for a device ``text`` that is not in the catalog (``context``: what named it, e.g.
    ``"--fail-on 'memory.fits=x': "``). It lists the ids of the family the text names (``iphone-99``: the
    iPhones), not all 70-odd, and says where the whole list is."""
    from devicefit._suggest import did_you_mean

    devices = _catalog()
    ids = [d.id for d in devices]
    family = _norm(text).split(" ")[0] if text.strip() else ""
    same = [i for i in ids if i.split("-")[0] == family]
    if text.lower().startswith(("ios", "macos", "watchos", "tvos", "visionos")):
        hint = f" ({text!r} looks like a deployment target: pass --deployment-target {text})"
    else:  # beside the family's list only a near-certain pick ('iphone-15-pro-maxx'; not 'iphone-x' for 'iphone-99')
        hint = did_you_mean(text, ids + [d.name for d in devices], *((1, 0.9) if same else (3, 0.6)))
    listed = f"{family} devices: {', '.join(same)}" if same else f"known devices: {', '.join(ids)}"
    return InputError(
        f"{context}unknown device {text!r}{hint}; {listed} (all {len(ids)}: devicefit devices --catalog)"
    )
