"""Human-readable numbers for the terminal and HTML reports."""

from __future__ import annotations

import math


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} GiB"  # pragma: no cover


def number(v: object) -> str:
    """Numbers with 4 significant digits; inf / huge sentinels as ``inf``; None as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v) or abs(v) >= 1e300:
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    return str(v)


def human_ms(ms: float | None) -> str:
    """A duration given in milliseconds, in the unit that reads best: ``0.00066`` -> ``"0.66 µs"``."""
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    if ms >= 1:
        return f"{ms:.3g} ms"
    if ms >= 1e-3:
        return f"{ms * 1e3:.3g} µs"
    return f"{ms * 1e6:.3g} ns"
