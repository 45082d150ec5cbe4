"""Which table each integer input column indexes, so generated ids stay inside it.

``check`` draws integer inputs within the example's range (:func:`devicefit.sources.data.generate`), one range
per tensor. A tabular model's ``x_cat`` (N x 3) feeding embeddings of 5, 1000 and 20 rows column by column
then gets ids up to 999 in every column: PyTorch refuses almost every sample (15 of 16 left out, the verdict
read off the example alone). Running the model once on its example under a dispatch mode records every
lookup (``aten.embedding``, ``index_select``, tensor indexing) with the size of the table it reads; a lookup
whose ids equal an input column (plus a constant offset: one shared table with per-column offsets) bounds
that column, one equal to the whole input bounds all of it, and a whole input shifted by per-column offsets
(one table shared by the columns) bounds each column by the next larger offset. Generated columns are then redrawn within
``[max(low, -offset), min(high, rows - 1 - offset)]`` of the example's range ``[low, high]``.

Ids the model computes from two columns, as their difference (LayoutLM's box widths ``bbox[..., 2] - bbox[..., 0]``
and heights feeding a table of 1024 rows), bound that difference: the columns drawn independently made
negative widths and PyTorch refused 15 of 16 samples. Where a generated row's difference falls outside the
table, its two values are swapped (a box drawn right to left becomes one drawn left to right), then the first
is clipped into range. Ids computed any other way are not matched: PyTorch then refuses the samples they break,
and check says so and to pass real inputs with ``--data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ColumnBound:
    """An integer input's column (None: every element) and the ids the table it indexes accepts.

    Attributes:
        column: index along the input's last axis, or None for the whole input.
        low: smallest accepted id (the negated offset, 0 without one).
        high: largest accepted id (``rows - 1 - offset``).
        rows: the table's size (a shared table: the column's part of it), for the note.
        minus: the column subtracted from ``column`` to make the ids (the bound is on their difference), or
            None for the column's own values.
    """

    column: int | None
    low: int
    high: int
    rows: int
    minus: int | None = None


def _lookups(source: Any, example: dict[str, np.ndarray]) -> list[tuple[np.ndarray, int]]:
    """(ids, rows of the table they index) of every lookup PyTorch makes on ``example``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    found: list[tuple[np.ndarray, int]] = []

    def record(ids: Any, rows: int) -> None:
        if isinstance(ids, torch.Tensor) and not ids.is_floating_point() and ids.dtype != torch.bool:
            found.append((ids.detach().cpu().numpy(), int(rows)))

    class Probe(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func is aten.embedding.default:
                record(args[1], args[0].shape[0])
            elif func is aten.index_select.default:
                record(args[2], args[0].shape[args[1]])
            elif func is aten.index.Tensor:
                for dim, ids in enumerate(args[1]):
                    if ids is not None:
                        record(ids, args[0].shape[dim])
            return func(*args, **(kwargs or {}))

    with Probe():
        source.reference(example)
    return found


def _offset(ids: np.ndarray, values: np.ndarray) -> int | None:
    """The constant ``ids - values`` when ``ids`` are ``values`` shifted (0 only, unless two ids differ)."""
    if ids.size != values.size or not ids.size:
        return None
    diff = ids.reshape(-1).astype(np.int64) - values.reshape(-1).astype(np.int64)
    if not (diff == diff[0]).all():
        return None
    # NOTE: one distinct value matches any offset (position ids 0..L-1 against one row of token ids)
    if diff[0] != 0 and np.unique(values).size < 2:
        return None
    return int(diff[0])


def _matches(ids: np.ndarray, rows: int, x: np.ndarray) -> list[ColumnBound]:
    """The bounds one lookup of ``rows`` sets on input ``x``'s columns (none when its ids are not x's)."""
    columns = x.shape[-1] if x.ndim >= 2 and x.shape[-1] > 1 else 0
    if ids.size == x.size:
        whole = ids.reshape(x.shape)
        if not columns:
            offset = _offset(whole, x)
            return [] if offset is None else [ColumnBound(None, -offset, rows - 1 - offset, rows)]
        offsets = [_offset(whole[..., j], x[..., j]) for j in range(columns)]
        if any(o is None for o in offsets):
            return []
        if len(set(offsets)) == 1:
            o = int(offsets[0] or 0)
            return [ColumnBound(None, -o, rows - 1 - o, rows)]
        # one shared table, each column's ids shifted past the previous columns' (per-column offsets): a
        # column's ids end where the next larger offset begins, when the example's own ids say so
        found = []
        for j, o in enumerate(int(v or 0) for v in offsets):
            end = min((int(v or 0) for v in offsets if int(v or 0) > o), default=rows)
            if int(whole[..., j].max()) >= end:
                end = rows
            found.append(ColumnBound(j, -o, end - 1 - o, end - o))
        return found
    found = []
    for j in range(columns):
        offset = _offset(ids, x[..., j])
        if offset is not None:
            found.append(ColumnBound(j, -offset, rows - 1 - offset, rows))
    if found or ids.size * max(columns, 1) != x.size:
        return found
    wide = x.astype(np.int64)
    for a in range(columns):  # ids one column minus another computes (a box's width, a span's length)
        for b in range(columns):
            if a != b and np.unique(wide[..., a]).size > 1 and np.unique(wide[..., b]).size > 1:
                offset = _offset(ids, wide[..., a] - wide[..., b])
                if offset is not None:
                    found.append(ColumnBound(a, -offset, rows - 1 - offset, rows, minus=b))
    return found


def column_bounds(source: Any, example: dict[str, np.ndarray]) -> dict[str, list[ColumnBound]]:
    """Integer input name -> the bounds its columns' tables set (inputs indexing no table are left out).

    A column feeding several tables gets the tightest bound. The probe is best effort: a model that fails on
    its own example, or indexes with ids it computes, yields no bounds (the example's range stays).
    """
    try:
        lookups = _lookups(source, example)
    except Exception:  # NOTE: the example's own failure is reported by the stages that follow
        return {}
    out: dict[str, list[ColumnBound]] = {}
    for name, value in example.items():
        x = np.asarray(value)
        if x.dtype.kind not in "iu" or not x.size:
            continue
        tightest: dict[tuple[int | None, int | None], ColumnBound] = {}
        for ids, rows in lookups:
            for bound in _matches(ids, rows, x):
                held = tightest.get((bound.column, bound.minus))
                if held is None or bound.high - bound.low < held.high - held.low:
                    tightest[(bound.column, bound.minus)] = bound
        if tightest:
            out[name] = list(tightest.values())
    return out


def fit_generated(dataset: Any, bounds: dict[str, list[ColumnBound]], seed: int) -> list[str]:
    """Redraw generated ids outside their table (sample 0, the example, stays); one note line per input.

    Each bounded column is drawn uniformly from the example's range intersected with its table's ids (the
    table's ids alone when they do not meet).
    """
    rng = np.random.default_rng([seed, 8])
    notes: list[str] = []
    if len(dataset.feeds) < 2:  # the example alone: nothing was generated
        return notes
    for name, found in bounds.items():
        example = np.asarray(dataset.feeds[0][name])
        low, high = int(example.min()), int(example.max())
        narrowed = []
        for b in sorted(found, key=lambda b: -1 if b.column is None else b.column):
            if b.minus is not None:
                continue  # differences are fitted once every column holds its own range
            lo, hi = max(low, b.low), min(high, b.high)
            if lo > hi:
                lo, hi = max(b.low, 0), b.high
            if (lo, hi) == (low, high):
                continue
            for feeds in dataset.feeds[1:]:
                arr = np.array(feeds[name], copy=True)
                where = (...,) if b.column is None else (..., b.column)
                arr[where] = rng.integers(lo, hi + 1, arr[where].shape)
                feeds[name] = arr.astype(np.asarray(feeds[name]).dtype)
            what = "all of it" if b.column is None else f"column {b.column}"
            narrowed.append(f"{what} indexes a table of {b.rows} rows: ids {lo}..{hi}")
        for b in found:
            if b.minus is not None and _fit_difference(dataset.feeds[1:], name, b):
                narrowed.append(
                    f"column {b.column} minus column {b.minus} indexes a table of {b.rows} rows: kept within "
                    f"{b.low}..{b.high} (the two values swapped, then clipped, where it was not)"
                )
        if narrowed:
            notes.append(
                f"integer input {name!r}: {'; '.join(narrowed)} (the example spans {low}..{high}); generated "
                "samples were drawn within each table"
            )
    return notes


def _fit_difference(feeds: list[dict[str, Any]], name: str, b: ColumnBound) -> bool:
    """Keep ``x[..., column] - x[..., minus]`` of each generated sample in ``[low, high]``; True if any moved."""
    assert b.column is not None and b.minus is not None
    moved = False
    for sample in feeds:
        arr = np.array(sample[name], copy=True)
        first, second = arr[..., b.column].astype(np.int64), arr[..., b.minus].astype(np.int64)
        outside = (first - second < b.low) | (first - second > b.high)
        if not outside.any():
            continue
        swap = outside & (second - first >= b.low) & (second - first <= b.high)
        first, second = np.where(swap, second, first), np.where(swap, first, second)
        first = np.clip(first, second + b.low, second + b.high)
        arr[..., b.column], arr[..., b.minus] = first, second
        sample[name] = arr.astype(np.asarray(sample[name]).dtype)
        moved = True
    return moved
