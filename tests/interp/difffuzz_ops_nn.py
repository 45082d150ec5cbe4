"""More op families for the differential fuzzer (tests/interp/difffuzz.py), beside ``difffuzz_ops``' grammar:
3-D and strided / dilated / grouped 1-D convolutions and their transposes, 3-D pooling and resizes, recurrent layers,
attention, scatters and index writes, shuffles and windows, grid sampling, embeddings, moments and norms.

The generators follow ``difffuzz_ops``' contract (a :class:`Builder` in, a :class:`Step` or None out). Layers with
weights (``nn.LSTM``, ``nn.MultiheadAttention``) are builder submodules named ``n<k>``, their weights drawn from the
seed's rng, so ``module.double()`` makes them float64 for the sensitivity runs like the constant buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.interp.difffuzz_ops import Builder, Fn, Step, _has_ties


def _lift(x: torch.Tensor, rank: int) -> torch.Tensor:
    """``x`` with leading size-1 axes up to ``rank`` (a rank-4 pool value as a batch of one for a 3-D op)."""
    return x.reshape((1,) * (rank - x.dim()) + tuple(x.shape))


def _ints(b: Builder, lo: int, hi: int, n: int) -> tuple[int, ...]:
    return tuple(b.int_(lo, hi) for _ in range(n))


# ------------------------------------------------------------------ convolutions
def conv_nd(b: Builder) -> Step | None:
    """conv1d / conv3d and their transposes with per-axis stride, dilation, groups and output_padding."""
    v = b.pick(min_rank=3, max_rank=5)
    if v is None:
        return None
    x = b.values[v]
    spatial = 1 if x.dim() == 3 else 3
    shape = (1, *x.shape) if x.dim() == 4 else tuple(x.shape)
    cin = shape[1]
    groups = b.choice([g for g in (1, 2, 3, cin) if cin % g == 0])
    cout = groups * b.int_(1, 2)
    k = _ints(b, 1, 3, spatial)
    stride, dilation = _ints(b, 1, 2, spatial), _ints(b, 1, 2, spatial)
    pad = tuple(b.int_(0, (kk - 1) * d // 2 + (1 if b.chance(0.3) else 0)) for kk, d in zip(k, dilation))
    lift = x.dim() == 4
    src = f"v{v}[None]" if lift else f"v{v}"
    if b.chance(0.4):
        w = b.float_const((cin, cout // groups, *k), 0.5)
        out_pad = tuple(b.int_(0, max(s, d) - 1) for s, d in zip(stride, dilation))
        bias = b.float_const((cout,)) if b.chance(0.5) else None
        fn_t = F.conv_transpose1d if spatial == 1 else F.conv_transpose3d
        return Step(
            f"conv_transpose{spatial}d({src}, {w}, {bias}, stride={stride}, padding={pad}, "
            f"output_padding={out_pad}, groups={groups}, dilation={dilation})",
            lambda m, x: fn_t(
                _lift(x, spatial + 2),
                getattr(m, w),
                getattr(m, bias) if bias else None,
                stride,
                pad,
                out_pad,
                groups,
                dilation,
            ),
            (v,),
        )
    w = b.float_const((cout, cin // groups, *k), 0.5)
    bias = b.float_const((cout,)) if b.chance(0.6) else None
    padding: Any = "same" if b.chance(0.2) else pad
    if padding == "same":
        stride = (1,) * spatial
    fn = F.conv1d if spatial == 1 else F.conv3d
    return Step(
        f"conv{spatial}d({src}, {w}, {bias}, stride={stride}, padding={padding!r}, dilation={dilation}, "
        f"groups={groups})",
        lambda m, x: fn(
            _lift(x, spatial + 2),
            getattr(m, w),
            getattr(m, bias) if bias else None,
            stride,
            padding,
            dilation,
            groups,
        ),
        (v,),
    )


def pool_3d(b: Builder) -> Step | None:
    """max / avg / adaptive (non-divisible sizes) 3-D pooling, and lp_pool / fractional kernels in 1-D / 2-D."""
    v = b.pick(min_rank=4, max_rank=5)
    if v is None:
        return None
    x = _lift(b.values[v], 5)
    src = f"v{v}[None]" if b.values[v].dim() == 4 else f"v{v}"
    kind = b.choice(["max", "avg", "adaptive_avg", "adaptive_max"])
    if kind.startswith("adaptive"):
        size = tuple(b.int_(1, s + 1) for s in x.shape[2:])
        fn_a = getattr(F, f"{kind}_pool3d")
        return Step(f"{kind}_pool3d({src}, {size})", lambda m, x: fn_a(_lift(x, 5), size), (v,))
    k = _ints(b, 1, 3, 3)
    stride = _ints(b, 1, 2, 3)
    pad = tuple(b.int_(0, kk // 2) for kk in k)
    ceil = b.chance(0.4)
    if kind == "max":
        return Step(
            f"max_pool3d({src}, {k}, {stride}, {pad}, ceil_mode={ceil})",
            lambda m, x: F.max_pool3d(_lift(x, 5), k, stride, pad, ceil_mode=ceil),
            (v,),
        )
    include = b.chance(0.5)
    return Step(
        f"avg_pool3d({src}, {k}, {stride}, {pad}, ceil_mode={ceil}, count_include_pad={include})",
        lambda m, x: F.avg_pool3d(_lift(x, 5), k, stride, pad, ceil_mode=ceil, count_include_pad=include),
        (v,),
    )


def resize_nd(b: Builder) -> Step | None:
    """interpolate in 3-D (trilinear, nearest), area mode, antialiased downscales, recompute_scale_factor."""
    v = b.pick(min_rank=3, max_rank=5)
    if v is None:
        return None
    x = b.values[v]
    spatial = x.dim() - 2
    modes = {
        1: ["linear", "area", "nearest"],
        2: ["bilinear", "area", "bicubic"],
        3: ["trilinear", "nearest", "area"],
    }
    mode = b.choice(modes[spatial])
    align = b.chance(0.5) if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
    kwargs: dict[str, Any] = {}
    if mode in ("bilinear", "bicubic") and b.chance(0.4):
        kwargs["antialias"] = True
        kwargs["size"] = tuple(b.int_(1, max(1, s - 1)) for s in x.shape[2:])
    elif b.chance(0.5):
        kwargs["scale_factor"] = b.choice([2.0, 0.5, 1.5, 2.5])
        if mode != "area" and b.chance(0.4):
            kwargs["recompute_scale_factor"] = True
    else:
        kwargs["size"] = _ints(b, 1, 7, spatial)
    return Step(
        f"interpolate(v{v}, mode={mode!r}, align_corners={align}, **{kwargs})",
        lambda m, x: F.interpolate(x, mode=mode, align_corners=align, **kwargs),
        (v,),
    )


# ------------------------------------------------------------------ layers with weights
def _randomize(b: Builder, layer: torch.nn.Module, scale: float) -> torch.nn.Module:
    """The layer with its weights drawn from the seed's rng (the global torch seed stays untouched)."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(
                torch.from_numpy(np.asarray(b.rng.uniform(-scale, scale, tuple(p.shape)), dtype=np.float32))
            )
    layer.requires_grad_(False)
    return layer.eval()


def recurrent(b: Builder) -> Step | None:
    """nn.LSTM / GRU / RNN: 1-2 layers, bidirectional, batch_first, with or without an initial state; LSTM
    proj_size."""
    v = b.pick(min_rank=3, max_rank=3)
    if v is None:
        return None
    x = b.values[v]
    kind = b.choice(["LSTM", "GRU", "RNN"])
    layers, bidir, batch_first = b.int_(1, 2), b.chance(0.5), b.chance(0.4)
    hidden = b.int_(1, 5)
    kwargs: dict[str, Any] = {"num_layers": layers, "bidirectional": bidir, "batch_first": batch_first}
    if kind == "RNN":
        kwargs["nonlinearity"] = b.choice(["tanh", "relu"])
    if b.chance(0.2):
        kwargs["bias"] = False
    # NOTE: proj_size from the draws already made (no new draw, so other programs stay as they were): an LSTM of
    # hidden size > 1 projects to hidden - 1 in a third of the cases; its h0 is the drawn state cut to that size
    proj = hidden - 1 if kind == "LSTM" and hidden > 1 and (hidden + layers) % 3 == 0 else 0
    if proj:
        kwargs["proj_size"] = proj
    layer = _randomize(b, getattr(torch.nn, kind)(x.shape[-1], hidden, **kwargs), b.choice([0.3, 0.8]))
    name = b.module(layer)
    batch = x.shape[0] if batch_first else x.shape[1]
    state_shape = (layers * (2 if bidir else 1), batch, hidden)
    state: tuple[str, ...] = ()
    if b.chance(0.5):
        state = (b.float_const(state_shape, 0.5),) * 1 + (
            (b.float_const(state_shape, 0.5),) if kind == "LSTM" else ()
        )
    part = b.choice([0, 0, 1] if kind != "LSTM" else [0, 0, 1, 2])
    desc = f"{name} = nn.{kind}({x.shape[-1]}, {hidden}, **{kwargs})"

    def run(m: Any, x: torch.Tensor) -> torch.Tensor:
        hx: Any = None
        if state:
            hx = tuple(getattr(m, s) for s in state) if kind == "LSTM" else getattr(m, state[0])
            if proj:
                hx = (hx[0][..., :proj].contiguous(), hx[1])
        out, h = getattr(m, name)(x, hx)
        if part == 0:
            return out
        return (h[part - 1] if kind == "LSTM" else h).contiguous()

    return Step(f"{desc}(v{v}, {list(state) or None})[{part}]", run, (v,))


def attention(b: Builder) -> Step | None:
    """F.scaled_dot_product_attention (causal, bool / float masks, scale) and nn.MultiheadAttention (key padding,
    attention masks, batch_first, averaged or per-head weights)."""
    v = b.pick(min_rank=3, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    lead, q_len, e = tuple(x.shape[:-2]), x.shape[-2], x.shape[-1]
    if b.chance(0.55):
        self_attn = b.chance(0.4)
        s_len, ev = (q_len, e) if self_attn else (b.int_(1, 6), b.int_(1, 5))
        k = None if self_attn else b.float_const((*lead, s_len, e))
        val = None if self_attn else b.float_const((*lead, s_len, ev))
        causal = b.chance(0.3)
        mask = None
        if not causal and b.chance(0.6):
            keep = b.rng.random((q_len, s_len)) < 0.7
            keep[np.arange(q_len), b.rng.integers(0, s_len, q_len)] = True  # no row fully masked
            if b.chance(0.5):
                mask = b.const(torch.from_numpy(keep))
            else:
                add = np.where(
                    keep, b.rng.standard_normal((q_len, s_len)), -np.inf if b.chance(0.5) else -1e4
                )
                mask = b.const(torch.from_numpy(np.asarray(add, dtype=np.float32)))
        scale = b.choice([None, None, 0.5, 2.0])

        def sdpa(m: Any, x: torch.Tensor) -> torch.Tensor:
            key = x if k is None else getattr(m, k)
            value = x if val is None else getattr(m, val)
            attn_mask = None if mask is None else getattr(m, mask)
            return F.scaled_dot_product_attention(x, key, value, attn_mask, is_causal=causal, scale=scale)

        return Step(
            f"sdpa(v{v}, {k or f'v{v}'}, {val or f'v{v}'}, mask={mask}, is_causal={causal}, scale={scale})",
            sdpa,
            (v,),
        )
    if x.dim() != 3:
        return None
    heads = b.choice([h for h in (1, 2, 3) if e % h == 0])
    batch_first = b.chance(0.5)
    layer = _randomize(
        b, torch.nn.MultiheadAttention(e, heads, bias=b.chance(0.7), batch_first=batch_first), 0.5
    )
    name = b.module(layer)
    n, length = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    pad_mask = attn_mask = None
    if b.chance(0.4):
        padded = b.rng.random((n, length)) < 0.3
        padded[:, 0] = False
        pad_mask = b.const(torch.from_numpy(padded))
    if b.chance(0.3):
        attn_mask = b.const(torch.from_numpy(np.triu(np.ones((length, length), dtype=bool), 1)))
    need, average = b.chance(0.5), b.chance(0.5)
    part = 1 if need and b.chance(0.5) else 0

    def mha(m: Any, x: torch.Tensor) -> torch.Tensor:
        out = getattr(m, name)(
            x,
            x,
            x,
            key_padding_mask=None if pad_mask is None else getattr(m, pad_mask),
            need_weights=need,
            attn_mask=None if attn_mask is None else getattr(m, attn_mask),
            average_attn_weights=average,
        )
        return out[part]

    return Step(
        f"{name} = nn.MultiheadAttention({e}, {heads}, batch_first={batch_first})(v{v}, v{v}, v{v}, "
        f"key_padding_mask={pad_mask}, attn_mask={attn_mask}, need_weights={need}, average={average})[{part}]",
        mha,
        (v,),
    )


def embedding(b: Builder) -> Step | None:
    """F.embedding of an integer pool value (wrapped into range), with a padding_idx sometimes."""
    v = b.pick("int", min_rank=1, max_rank=3)
    if v is None:
        return None
    rows, width = b.int_(2, 10), b.int_(1, 5)
    w = b.float_const((rows, width))
    padding = b.choice([None, 0, rows - 1])
    return Step(
        f"embedding(v{v} % {rows}, {w}, padding_idx={padding})",
        lambda m, x: F.embedding(torch.remainder(x.long(), rows), getattr(m, w), padding_idx=padding),
        (v,),
    )


# ------------------------------------------------------------------ writes by index
def _distinct_index(b: Builder, shape: tuple[int, ...], size: int, dim: int) -> torch.Tensor:
    """An index of ``shape`` into an axis of ``size`` whose entries are distinct along ``dim`` (so a scatter
    writes each place once: PyTorch leaves the winner of duplicate writes unspecified)."""
    moved = list(shape)
    n = moved.pop(dim)
    rows = [b.rng.permutation(size)[:n] for _ in range(int(np.prod(moved)) if moved else 1)]
    arr = np.asarray(rows).reshape((*moved, n))
    return torch.from_numpy(np.moveaxis(arr, -1, dim).astype(np.int64))


def scatter(b: Builder) -> Step | None:
    """scatter / scatter_add / scatter_reduce / index_add / index_copy / index_fill / index_put / masked_fill /
    masked_scatter, with constant indices and sources."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    rank, d = x.dim(), b.dim(v)
    size = x.shape[d]
    floating = x.is_floating_point()

    def source(shape: tuple[int, ...]) -> str:
        if floating:
            return b.float_const(shape)
        return b.const(torch.from_numpy(b.rng.integers(-5, 6, size=shape)).to(x.dtype))

    form = b.choice(
        [
            *("scatter", "scatter_value", "scatter_add", "scatter_reduce", "index_add", "index_copy"),
            *("index_fill", "index_put", "index_put_acc", "masked_fill", "masked_scatter"),
        ]
    )
    if form in ("scatter", "scatter_value", "scatter_add", "scatter_reduce"):
        shape = tuple(b.int_(1, s) if i != d % rank else b.int_(1, size) for i, s in enumerate(x.shape))
        if form == "scatter_add":
            idx = b.const(torch.from_numpy(b.rng.integers(0, size, size=shape)).long())
        else:
            idx = b.const(_distinct_index(b, shape, size, d % rank))
        if form == "scatter_value":
            value = b.choice([-2.5, 0.0, 4.0]) if floating else b.choice([-3, 7])
            return Step(
                f"scatter(v{v}, {d}, {idx}, {value})",
                lambda m, x: torch.scatter(x, d, getattr(m, idx), value),
                (v,),
            )
        src = source(shape)
        if form == "scatter":
            return Step(
                f"scatter(v{v}, {d}, {idx}, {src})",
                lambda m, x: torch.scatter(x, d, getattr(m, idx), getattr(m, src)),
                (v,),
            )
        if form == "scatter_add":
            return Step(
                f"scatter_add(v{v}, {d}, {idx}, {src})",
                lambda m, x: torch.scatter_add(x, d, getattr(m, idx), getattr(m, src)),
                (v,),
            )
        reduce = b.choice(["sum", "prod", "amax", "amin"] + (["mean"] if floating else []))
        include = b.chance(0.6)
        return Step(
            f"scatter_reduce(v{v}, {d}, {idx}, {src}, {reduce!r}, include_self={include})",
            lambda m, x: torch.scatter_reduce(
                x, d, getattr(m, idx), getattr(m, src), reduce, include_self=include
            ),
            (v,),
        )
    if form in ("index_add", "index_copy", "index_fill"):
        n = b.int_(1, size)
        picks = b.rng.integers(0, size, n) if form == "index_add" else b.rng.permutation(size)[:n]
        idx = b.const(torch.from_numpy(np.asarray(picks, dtype=np.int64)))
        if form == "index_fill":
            value = b.choice([-1.5, 3.0]) if floating else b.choice([-4, 2])
            return Step(
                f"index_fill(v{v}, {d}, {idx}, {value})",
                lambda m, x: x.index_fill(d, getattr(m, idx), value),
                (v,),
            )
        src = source(tuple(n if i == d % rank else s for i, s in enumerate(x.shape)))
        if form == "index_copy":
            return Step(
                f"index_copy(v{v}, {d}, {idx}, {src})",
                lambda m, x: x.index_copy(d, getattr(m, idx), getattr(m, src)),
                (v,),
            )
        alpha = b.choice([1, 2]) if not floating else b.choice([1.0, -0.5])
        return Step(
            f"index_add(v{v}, {d}, {idx}, {src}, alpha={alpha})",
            lambda m, x: x.index_add(d, getattr(m, idx), getattr(m, src), alpha=alpha),
            (v,),
        )
    if form in ("index_put", "index_put_acc"):
        accumulate = form == "index_put_acc"
        n = b.int_(1, x.shape[0])
        picks = (
            b.rng.integers(-x.shape[0], x.shape[0], n) if accumulate else b.rng.permutation(x.shape[0])[:n]
        )
        idx = b.const(torch.from_numpy(np.asarray(picks, dtype=np.int64)))
        src = source((n, *x.shape[1:]) if b.chance(0.7) else tuple(x.shape[-1:]) if rank > 1 else (1,))
        return Step(
            f"index_put(v{v}, ({idx},), {src}, accumulate={accumulate})",
            lambda m, x: torch.index_put(x, (getattr(m, idx),), getattr(m, src), accumulate),
            (v,),
        )
    mask = b.const(torch.from_numpy(np.asarray(b.rng.random(b.broadcast_shape(tuple(x.shape))) < 0.4)))
    if form == "masked_fill":
        value = b.choice([-7.5, 0.25]) if floating else b.choice([5, -1])
        return Step(
            f"masked_fill(v{v}, {mask}, {value})", lambda m, x: x.masked_fill(getattr(m, mask), value), (v,)
        )
    src = source(tuple(x.shape))
    return Step(
        f"masked_scatter(v{v}, {mask}, {src})",
        lambda m, x: x.masked_scatter(getattr(m, mask), getattr(m, src)),
        (v,),
    )


# ------------------------------------------------------------------ shuffles and windows
def shuffle(b: Builder) -> Step | None:
    """pixel_shuffle / pixel_unshuffle / channel_shuffle, F.unfold, Tensor.unfold, repeat_interleave, roll over
    several dims, tril / triu with offsets beyond the matrix, diagonal / diag_embed, movedim."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    rank, d = x.dim(), b.dim(v)
    forms = ["tensor_unfold", "repeat_interleave", "repeat_interleave_tensor", "roll_multi", "movedim"]
    if rank >= 2:
        forms += ["tril_far", "triu_far", "diagonal"]
    if rank == 4:
        c, h, w = x.shape[1:]
        forms += [
            f for f, ok in (("pixel_shuffle", c % 4 == 0 or c % 9 == 0), ("channel_shuffle", c > 1)) if ok
        ]
        forms += ["pixel_unshuffle"] if h % 2 == w % 2 == 0 or h % 3 == w % 3 == 0 else []
        forms += ["im2col"] if x.is_floating_point() else []
    if rank <= 3 and x.is_floating_point():
        forms.append("diag_embed")
    form = b.choice(forms)
    table: dict[str, tuple[str, Fn]] = {}
    if form == "tensor_unfold":
        size = b.int_(1, x.shape[d])
        step = b.int_(1, 3)
        table[form] = (f"v{v}.unfold({d}, {size}, {step})", lambda x: x.unfold(d, size, step))
    elif form == "repeat_interleave":
        r = b.int_(1, 3)
        if b.chance(0.3):
            table[form] = (f"repeat_interleave(v{v}, {r})", lambda x: torch.repeat_interleave(x, r))
        else:
            table[form] = (f"repeat_interleave(v{v}, {r}, {d})", lambda x: torch.repeat_interleave(x, r, d))
    elif form == "repeat_interleave_tensor":
        counts = b.const(torch.from_numpy(b.rng.integers(0, 3, size=x.shape[d])).long())
        return Step(
            f"repeat_interleave(v{v}, {counts}, {d})",
            lambda m, x: torch.repeat_interleave(x, getattr(m, counts), d),
            (v,),
        )
    elif form == "roll_multi":
        shifts = _ints(b, -4, 4, min(rank, 2))
        dims = tuple(sorted({b.dim(v) % rank for _ in range(len(shifts))}))
        shifts = shifts[: len(dims)]
        table[form] = (f"roll(v{v}, {shifts}, {dims})", lambda x: torch.roll(x, shifts, dims))
    elif form == "movedim":
        d2 = b.dim(v)
        table[form] = (f"movedim(v{v}, {d}, {d2})", lambda x: torch.movedim(x, d, d2))
    elif form in ("tril_far", "triu_far"):
        k = b.choice([-4, -2, 2, 5])
        fn_t = torch.tril if form == "tril_far" else torch.triu
        table[form] = (f"{form[:4]}(v{v}, {k})", lambda x: fn_t(x, k))
    elif form == "diagonal":
        d1, d2 = sorted(np.random.default_rng(int(b.rng.integers(1 << 30))).permutation(rank)[:2].tolist())
        off = b.int_(-2, 2)
        table[form] = (
            f"diagonal(v{v}, {off}, {d1}, {d2})",
            lambda x: torch.diagonal(x, off, d1, d2).contiguous(),
        )
    elif form == "diag_embed":
        off = b.int_(-1, 1)
        table[form] = (f"diag_embed(v{v}, {off})", lambda x: torch.diag_embed(x, off))
    elif form == "pixel_shuffle":
        r = b.choice([r for r in (2, 3) if x.shape[1] % (r * r) == 0])
        table[form] = (f"pixel_shuffle(v{v}, {r})", lambda x: F.pixel_shuffle(x, r))
    elif form == "pixel_unshuffle":
        r = b.choice([r for r in (2, 3) if x.shape[2] % r == x.shape[3] % r == 0])
        table[form] = (f"pixel_unshuffle(v{v}, {r})", lambda x: F.pixel_unshuffle(x, r))
    elif form == "channel_shuffle":
        g = b.choice([g for g in range(2, x.shape[1] + 1) if x.shape[1] % g == 0])
        table[form] = (f"channel_shuffle(v{v}, {g})", lambda x: F.channel_shuffle(x, g))
    else:
        k = _ints(b, 1, 3, 2)
        dil, pad_, stride = _ints(b, 1, 2, 2), _ints(b, 0, 1, 2), _ints(b, 1, 2, 2)
        table[form] = (
            f"unfold(v{v}, {k}, dilation={dil}, padding={pad_}, stride={stride})",
            lambda x: F.unfold(x, k, dil, pad_, stride),
        )
    text, fn = table[form]
    return Step(text, lambda m, x: fn(x), (v,))


def sampling(b: Builder) -> Step | None:
    """grid_sample (bilinear / nearest / bicubic; zeros / border / reflection padding; align_corners) on a
    constant grid or one from affine_grid."""
    v = b.pick(min_rank=4, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    n = x.shape[0]
    mode = b.choice(["bilinear", "nearest", "bicubic"])
    padding = b.choice(["zeros", "border", "reflection"])
    align = b.chance(0.5)
    out = _ints(b, 1, 5, 2)
    if b.chance(0.5):
        theta = b.float_const((n, 2, 3), 0.7)
        size = (n, x.shape[1], *out)
        return Step(
            f"grid_sample(v{v}, affine_grid({theta}, {size}, {align}), {mode!r}, {padding!r}, {align})",
            lambda m, x: F.grid_sample(
                x, F.affine_grid(getattr(m, theta), size, align), mode, padding, align
            ),
            (v,),
        )
    grid = b.const(torch.from_numpy(np.asarray(b.rng.uniform(-1.3, 1.3, (n, *out, 2)), dtype=np.float32)))
    return Step(
        f"grid_sample(v{v}, {grid}, {mode!r}, {padding!r}, {align})",
        lambda m, x: F.grid_sample(x, getattr(m, grid), mode, padding, align),
        (v,),
    )


# ------------------------------------------------------------------ moments, norms
def moments(b: Builder) -> Step | None:
    """std / var with corrections, var_mean / std_mean, vector / matrix norms of several orders, aminmax,
    count_nonzero, any / all, cummax / cummin, logcumsumexp, topk on any dim with k up to the size."""
    v = b.pick(min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    rank, d = x.dim(), b.dim(v)
    keep = b.chance(0.5)
    dims = sorted({b.dim(v) for _ in range(b.int_(1, min(2, rank)))}, key=lambda a: a % rank)
    if len({a % rank for a in dims}) != len(dims):
        dims = [d]
    form = b.choice(
        [
            *("var_corr", "std_corr", "var_mean", "std_mean", "vector_norm", "norm_p", "aminmax"),
            *("count_nonzero", "any", "all", "cummax", "cummin", "logcumsumexp", "topk"),
        ]
    )
    corr = b.choice([0, 1, 2])
    ord_ = b.choice([1, 2, 3, 0.5, float("inf"), float("-inf"), 0])
    part = b.int_(0, 1)
    table: dict[str, tuple[str, Fn]] = {
        "var_corr": (
            f"var(v{v}, {dims}, correction={corr}, keepdim={keep})",
            lambda x: torch.var(x, dims, correction=corr, keepdim=keep),
        ),
        "std_corr": (
            f"std(v{v}, {dims}, correction={corr}, keepdim={keep})",
            lambda x: torch.std(x, dims, correction=corr, keepdim=keep),
        ),
        "var_mean": (
            f"var_mean(v{v}, {dims}, keepdim={keep})[{part}]",
            lambda x: torch.var_mean(x, dims, keepdim=keep)[part],
        ),
        "std_mean": (
            f"std_mean(v{v}, {dims}, correction={corr})[{part}]",
            lambda x: torch.std_mean(x, dims, correction=corr)[part],
        ),
        "vector_norm": (
            f"vector_norm(v{v}, {ord_}, {dims}, keepdim={keep})",
            lambda x: torch.linalg.vector_norm(x, ord_, dims, keepdim=keep),
        ),
        "norm_p": (
            f"norm(v{v}, p={ord_ if ord_ else 'fro'}, dim={dims})",
            lambda x: torch.norm(x, p=ord_ if ord_ else "fro", dim=dims),
        ),
        "aminmax": (f"aminmax(v{v}, dim={d})[{part}]", lambda x: torch.aminmax(x, dim=d, keepdim=keep)[part]),
        "count_nonzero": (f"count_nonzero(v{v}, {d})", lambda x: torch.count_nonzero(x, d)),
        "any": (f"any(v{v} > 0.5, {d})", lambda x: torch.any(x > 0.5, d)),
        "all": (f"all(v{v} > -1, {d}, keepdim={keep})", lambda x: torch.all(x > -1, d, keepdim=keep)),
        "cummax": (f"cummax(v{v}, {d})[0]", lambda x: torch.cummax(x, d)[0]),
        "cummin": (f"cummin(v{v}, {d})[0]", lambda x: torch.cummin(x, d)[0]),
        "logcumsumexp": (f"logcumsumexp(v{v}, {d})", lambda x: torch.logcumsumexp(x, d)),
    }
    if form == "topk":
        k = b.int_(1, x.shape[d])
        largest, ordered = b.chance(0.6), b.chance(0.8)
        return Step(
            f"topk(v{v}, {k}, {d}, largest={largest}, sorted={ordered})[{part}]",
            lambda m, x: torch.topk(x, k, d, largest=largest, sorted=ordered)[part],
            (v,),
            (lambda x: _has_ties(x, d)) if part == 1 or not ordered else None,
        )
    text, fn = table[form]
    return Step(text, lambda m, x: fn(x), (v,))


def norm_more(b: Builder) -> Step | None:
    """local_response_norm, instance_norm with affine weights / running stats, rms_norm, layer_norm without
    affine, batch_norm on rank 2 / 3, group_norm with odd group counts."""
    v = b.pick(min_rank=2, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    c = x.shape[1]
    form = b.choice(["lrn", "instance_affine", "rms", "layer_plain", "batch_low_rank", "group"])
    if form == "lrn" and x.dim() >= 3:
        size = b.int_(1, 4)
        alpha, beta, k = b.choice([1e-4, 0.1, 1.0]), b.choice([0.75, 0.5, 1.0]), b.choice([1.0, 2.0])
        return Step(
            f"local_response_norm(v{v}, {size}, {alpha}, {beta}, {k})",
            lambda m, x: F.local_response_norm(x, size, alpha, beta, k),
            (v,),
        )
    if form == "instance_affine" and x.dim() >= 3:
        w, bias = b.float_const((c,)), b.float_const((c,))
        stats = b.chance(0.4)
        mean = b.float_const((c,)) if stats else None
        var = b.const(torch.from_numpy(b.rng.uniform(0.5, 2.0, c).astype(np.float32))) if stats else None
        return Step(
            f"instance_norm(v{v}, {mean}, {var}, {w}, {bias}, use_input_stats={not stats})",
            lambda m, x: F.instance_norm(
                x,
                getattr(m, mean) if mean else None,
                getattr(m, var) if var else None,
                getattr(m, w),
                getattr(m, bias),
                use_input_stats=not stats,
            ),
            (v,),
        )
    if form == "rms":
        shape = tuple(x.shape[-b.int_(1, 2) :])
        w = b.float_const(shape) if b.chance(0.6) else None
        eps = b.choice([None, 1e-5])
        return Step(
            f"rms_norm(v{v}, {shape}, {w}, eps={eps})",
            lambda m, x: F.rms_norm(x, shape, getattr(m, w) if w else None, eps),
            (v,),
        )
    if form == "batch_low_rank" and x.dim() <= 3:
        mean = b.float_const((c,))
        var = b.const(torch.from_numpy(b.rng.uniform(0.5, 2.0, c).astype(np.float32)))
        return Step(
            f"batch_norm(v{v}, {mean}, {var})",
            lambda m, x: F.batch_norm(x, getattr(m, mean), getattr(m, var), None, None, False, 0.1, 1e-3),
            (v,),
        )
    if form == "group" and x.dim() >= 3:
        groups = b.choice([g for g in range(1, c + 1) if c % g == 0])
        return Step(f"group_norm(v{v}, {groups})", lambda m, x: F.group_norm(x, groups, eps=1e-3), (v,))
    shape = tuple(x.shape[-1:])
    return Step(f"layer_norm(v{v}, {shape})", lambda m, x: F.layer_norm(x, shape), (v,))


def einsum_more(b: Builder) -> Step | None:
    """einsum equations beyond matmul's: outer products, traces, diagonals, sums, batched contractions of two pool
    values, implicit outputs, ellipses."""
    v = b.pick(min_rank=1, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    letters = "abcd"[: x.dim()]
    ins = letters
    form = b.choice(["outer", "sum_axis", "permute", "ellipsis", "pair", "diag"])
    if form == "outer":
        w = b.float_const((b.int_(1, 4),))
        eq = f"{ins},z->{ins}z"
        return Step(f"einsum('{eq}', v{v}, {w})", lambda m, x: torch.einsum(eq, x, getattr(m, w)), (v,))
    if form == "sum_axis":
        out = "".join(ch for ch in letters if b.chance(0.6))
        eq = f"{ins}->{out}"
    elif form == "permute":
        out = "".join(letters[i] for i in b.rng.permutation(len(letters)))
        eq = f"{ins}->{out}" if b.chance(0.7) else ins  # implicit output: sorted letters
    elif form == "ellipsis" and x.dim() >= 2:
        w = b.float_const((x.shape[-1], b.int_(1, 4)))
        eq = "...i,ij->...j"
        return Step(f"einsum('{eq}', v{v}, {w})", lambda m, x: torch.einsum(eq, x, getattr(m, w)), (v,))
    elif form == "pair":
        others = [i for i, o in enumerate(b.values) if o.is_floating_point() and o.dim() >= 1 and i != v]
        if not others:
            return None
        u = b.choice(others)
        y = b.values[u]
        yl = "wxyz"[4 - y.dim() :]
        # share one axis of equal size when there is one: a contraction, else an outer product
        shared = [(i, j) for i in range(x.dim()) for j in range(y.dim()) if x.shape[i] == y.shape[j]]
        if shared:
            i, j = b.choice(shared)
            yl = yl[:j] + letters[i] + yl[j + 1 :]
        keep_shared = b.chance(0.3)
        out = "".join(
            ch for ch in dict.fromkeys(letters + yl) if keep_shared or (ch not in letters or ch not in yl)
        )
        eq = f"{letters},{yl}->{out}"
        return Step(f"einsum('{eq}', v{v}, v{u})", lambda m, x, y: torch.einsum(eq, x, y), (v, u))
    elif form == "diag" and x.dim() >= 2 and x.shape[-1] == x.shape[-2]:
        eq = (
            f"{letters[:-1]}{letters[-2]}->{letters[:-1]}"
            if b.chance(0.5)
            else f"{letters[:-1]}{letters[-2]}->"
        )
    else:
        return None
    return Step(f"einsum('{eq}', v{v})", lambda m, x: torch.einsum(eq, x), (v,))


# family -> (generator, weight)
GRAMMAR_NN: dict[str, tuple[Any, float]] = {
    "conv_nd": (conv_nd, 1.0),
    "pool_3d": (pool_3d, 0.6),
    "resize_nd": (resize_nd, 0.6),
    "recurrent": (recurrent, 0.8),
    "attention": (attention, 0.8),
    "embedding": (embedding, 0.8),
    "scatter": (scatter, 1.2),
    "shuffle": (shuffle, 1.0),
    "sampling": (sampling, 0.5),
    "moments": (moments, 0.9),
    "norm_more": (norm_more, 0.7),
    "einsum_more": (einsum_more, 0.6),
}
