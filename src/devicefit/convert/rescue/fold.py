"""``F.fold`` (``aten::col2im``) with overlapping patches: the sum of every patch covering a pixel.

coremltools 9.0 translates ``col2im`` as one gather, which cannot add: it refuses ``stride < kernel_size``
(overlap-add of unfold / fold attention and sliding-window models), ``dilation > 1`` and sizes the stride does not
divide. Here every case is built from constant tables: each output pixel receives at most ``T`` patch entries, so
``T`` gathers (a missing entry reads an appended zero) summed in PyTorch's own order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue


def _pair(value: Any, name: str) -> tuple[int, int]:
    raw = value.val if hasattr(value, "val") else value
    if raw is None:
        raise ValueError(f"F.fold: {name} must be a constant")
    flat = [int(v) for v in np.atleast_1d(np.asarray(raw)).ravel()]
    if len(flat) == 1:
        flat = flat * 2
    if len(flat) != 2:
        raise ValueError(f"F.fold: {name} must have 2 values, got {flat}")
    return flat[0], flat[1]


def block_grid(
    output: tuple[int, int],
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[int, int]:
    """The number of patch positions along the height and the width (PyTorch's ``col2im`` formula)."""
    (height, width), (kh, kw), (dh, dw), (ph, pw), (sh, sw) = output, kernel, dilation, padding, stride
    if min(sh, sw, dh, dw, kh, kw) <= 0 or min(ph, pw) < 0:
        raise ValueError(f"F.fold: kernel {kernel}, dilation {dilation}, stride {stride} must be positive")
    blocks_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    blocks_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if blocks_h <= 0 or blocks_w <= 0:
        raise ValueError(
            f"F.fold: kernel {kernel} (dilation {dilation}) does not fit output {output} + padding"
        )
    return blocks_h, blocks_w


def fold_tables(
    output: tuple[int, int],
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    stride: tuple[int, int],
) -> np.ndarray:
    """``(T, H * W)`` positions into the flattened ``(kh * kw * L)`` patch entries, in PyTorch's order.

    Row ``t`` holds, for every output pixel, the ``t``-th entry that PyTorch's ``col2im`` adds into it (it walks
    the kernel offsets in order, so each pixel's entries come by increasing kernel index); a pixel with fewer
    entries points at ``kh * kw * L``, the zero appended after the patches.
    """
    (height, width), (kh, kw), (dh, dw), (ph, pw), (sh, sw) = output, kernel, dilation, padding, stride
    blocks_h, blocks_w = block_grid(output, kernel, dilation, padding, stride)
    blocks = blocks_h * blocks_w
    entries: list[list[int]] = [[] for _ in range(height * width)]
    for k in range(kh * kw):
        oh, ow = divmod(k, kw)
        for bh in range(blocks_h):
            y = bh * sh - ph + oh * dh
            if not 0 <= y < height:
                continue
            for bw in range(blocks_w):
                x = bw * sw - pw + ow * dw
                if 0 <= x < width:
                    entries[y * width + x].append(k * blocks + bh * blocks_w + bw)
    taps = max(1, max(len(e) for e in entries))
    table = np.full((taps, height * width), kh * kw * blocks, dtype=np.int32)
    for pixel, found in enumerate(entries):
        table[: len(found), pixel] = found
    return table


@rescue(
    "col2im",
    "override: coremltools 9.0 refuses F.fold with stride < kernel_size (overlapping patches are summed), "
    "dilation > 1 and sizes the stride does not divide",
    override=True,
)
def col2im(context: Any, node: Any) -> None:
    """``F.fold(x, output_size, kernel_size, dilation, padding, stride)`` for every setting.

    ``x`` is ``(N, C * kh * kw, L)`` (or unbatched ``(C * kh * kw, L)``); the output ``(N, C, H, W)``. The patch
    entries of a channel are flattened, a zero appended, and for each of the ``T`` rows of :func:`fold_tables` one
    gather picks an entry per pixel; the rows are added one after another, as PyTorch's ``col2im`` adds (so the
    result is bit-exact in fp32, and an ``inf`` entry stays ``inf``: no product with 0/1 weights).
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, expected=6)
    x = inputs[0]
    output, kernel, dilation, padding, stride = (
        _pair(v, n)
        for v, n in zip(inputs[1:6], ("output_size", "kernel_size", "dilation", "padding", "stride"))
    )
    if x.rank not in (2, 3) or any_symbolic(x.shape[-2:]):
        raise ValueError(f"F.fold: input must be (N, C*kh*kw, L) with static sizes, got shape {x.shape}")
    k_size = kernel[0] * kernel[1]
    rows, blocks = int(x.shape[-2]), int(x.shape[-1])
    blocks_h, blocks_w = block_grid(output, kernel, dilation, padding, stride)
    if rows % k_size or blocks != blocks_h * blocks_w:
        raise ValueError(
            f"F.fold: input {tuple(x.shape)} does not fit output {output}, kernel {kernel}, stride {stride} "
            f"({blocks_h * blocks_w} blocks of {k_size} entries per channel expected)"
        )
    table = fold_tables(output, kernel, dilation, padding, stride)
    channels = rows // k_size
    batched = x.rank == 3
    if not batched:
        x = mb.expand_dims(x=x, axes=[0])
    lead = int(x.shape[0]) if not any_symbolic(x.shape[:1]) else -1
    flat = mb.reshape(x=x, shape=[lead, channels, k_size * blocks])
    padded = mb.pad(
        x=flat, pad=np.array([0, 0, 0, 0, 0, 1], dtype=np.int32), mode="constant", constant_val=0.0
    )
    total = None
    for row in table:
        picked = mb.gather(x=padded, indices=row, axis=2)
        total = picked if total is None else mb.add(x=total, y=picked)
    shape = [lead, channels, output[0], output[1]] if batched else [channels, output[0], output[1]]
    context.add(mb.reshape(x=total, shape=shape, name=node.name), torch_name=node.name)
