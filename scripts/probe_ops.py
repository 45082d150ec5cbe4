"""Probe torch ops through both conversion frontends and the interpreter, against PyTorch.

    PYTHONPATH=src python scripts/probe_ops.py [--only NAME,...] [--frontends torchscript,torch.export]

Each case is one small function of example tensors. It is converted with devicefit (rescue translations on) through
each frontend, run by devicefit's interpreter in fp32, and compared with PyTorch eager: ``ok`` (every output within
``rtol``, NaN / inf placement and integers exact), ``WRONG`` (converted but differs: a silently wrong model, the worst
case), ``refused`` (the conversion failed; the blocking op and its hint follow) or ``torch`` (PyTorch itself cannot
trace the case on that frontend). A line per case and frontend, then the counts.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Any]
    inputs: Callable[[], tuple]
    rtol: float = 1e-5


def _cases() -> list[Case]:
    import torch
    import torch.nn.functional as F

    def r(*shape: int) -> Callable[[], tuple]:
        return lambda: (torch.randn(*shape),)

    def r2(a: tuple, b: tuple) -> Callable[[], tuple]:
        return lambda: (torch.randn(*a), torch.randn(*b))

    def pos(*shape: int) -> Callable[[], tuple]:
        return lambda: (torch.rand(*shape) + 0.1,)

    def spd(n: int) -> Callable[[], tuple]:
        return lambda: (torch.randn(2, n, n),)

    def signed() -> tuple:
        return torch.tensor([-7.5, -3.0, -0.5, 0.0, 2.5, 7.0]), torch.tensor(
            [2.0, -2.0, 3.0, -1.5, -2.0, 3.0]
        )

    img = r(1, 3, 9, 11)
    grid = lambda: (torch.randn(1, 2, 6, 7), torch.rand(1, 5, 4, 2) * 2.4 - 1.2)  # noqa: E731
    return [
        # round 1's list (the task's first part)
        Case(
            "isclose",
            lambda a, b: torch.isclose(a, b, rtol=1e-2, atol=1e-3),
            lambda: (
                torch.tensor([1.0, 2.0, math.nan, math.inf, 0.0]),
                torch.tensor([1.005, 2.1, math.nan, math.inf, 1e-4]),
            ),
        ),
        Case(
            "isclose_equal_nan",
            lambda a, b: torch.isclose(a, b, equal_nan=True),
            lambda: (torch.tensor([1.0, math.nan, -math.inf]), torch.tensor([1.0, math.nan, math.inf])),
        ),
        Case("inner", torch.inner, r2((3, 4), (5, 4))),
        Case("inner_1d", torch.inner, r2((4,), (4,))),
        Case(
            "multi_dot",
            lambda a, b, c: torch.linalg.multi_dot([a, b, c]),
            lambda: (torch.randn(3, 4), torch.randn(4, 5), torch.randn(5, 2)),
        ),
        Case("matrix_power_3", lambda a: torch.linalg.matrix_power(a, 3), spd(3)),
        Case("matrix_power_0", lambda a: torch.linalg.matrix_power(a, 0), spd(3)),
        Case("matrix_power_neg", lambda a: torch.linalg.matrix_power(a, -2), spd(3), rtol=1e-4),
        Case("det_3", torch.linalg.det, spd(3), rtol=1e-5),
        Case("det_4", torch.det, spd(4), rtol=1e-5),
        Case("combinations", lambda a: torch.combinations(a, 2), r(5)),
        Case("combinations_r3_repl", lambda a: torch.combinations(a, 3, with_replacement=True), r(4)),
        Case("adaptive_max_pool2d_idx", lambda a: F.adaptive_max_pool2d(a, (3, 4), return_indices=True), img),
        Case("matrix_norm_inf", lambda a: torch.linalg.matrix_norm(a, ord=math.inf), r(2, 3, 4)),
        Case("matrix_norm_-inf", lambda a: torch.linalg.matrix_norm(a, ord=-math.inf), r(2, 3, 4)),
        Case("matrix_norm_1", lambda a: torch.linalg.matrix_norm(a, ord=1), r(2, 3, 4)),
        Case("matrix_norm_fro", lambda a: torch.linalg.matrix_norm(a), r(2, 3, 4)),
        # the second part's list
        Case("trace", torch.trace, r(4, 5)),
        Case("diag_embed", lambda a: torch.diag_embed(a, offset=1), r(2, 3)),
        Case("tril_indices", lambda a: a[0, torch.tril_indices(4, 4)[1]], r(2, 4)),
        Case("bucketize", lambda a: torch.bucketize(a, torch.tensor([-1.0, 0.0, 0.5])), r(7)),
        Case("histc", lambda a: torch.histc(a, 5, -2.0, 2.0), r(50)),
        Case("logcumsumexp", lambda a: torch.logcumsumexp(a, 1), r(2, 6)),
        Case("cummax", lambda a: torch.cummax(a, 1), r(2, 6)),
        Case("cummin", lambda a: torch.cummin(a, 0), r(4, 3)),
        Case(
            "nan_to_num",
            lambda a: torch.nan_to_num(a / 0.0, nan=0.5, posinf=9.0),
            lambda: (torch.tensor([1.0, -1.0, 0.0, 2.0]),),
        ),
        Case(
            "nan_to_num_default",
            lambda a: torch.nan_to_num(a / 0.0),
            lambda: (torch.tensor([1.0, -1.0, 0.0, 2.0]),),
        ),
        Case("kron", torch.kron, r2((2, 3), (2, 2))),
        Case("cartesian_prod", torch.cartesian_prod, r2((3,), (2,))),
        Case("vander", lambda a: torch.vander(a, 4), r(5)),
        Case("vander_increasing", lambda a: torch.vander(a, 3, increasing=True), r(5)),
        Case("block_diag", torch.block_diag, r2((2, 2), (1, 3))),
        Case("rot90", lambda a: torch.rot90(a, 1, (1, 2)), r(2, 3, 4)),
        Case("rot90_k3", lambda a: torch.rot90(a, -1, (0, 1)), r(3, 4)),
        Case("roll_dims", lambda a: torch.roll(a, (1, -2), (0, 2)), r(3, 4, 5)),
        Case("roll_flat", lambda a: torch.roll(a, 3), r(3, 4)),
        Case("unfold", lambda a: F.unfold(a, 3, padding=1, stride=2), img),
        Case("fold", lambda a: F.fold(a, (5, 6), 2, stride=1), lambda: (torch.randn(1, 8, 20),)),
        Case("pixel_unshuffle", lambda a: F.pixel_unshuffle(a, 2), r(1, 2, 4, 6)),
        Case("pixel_shuffle", lambda a: F.pixel_shuffle(a, 2), r(1, 8, 3, 2)),
        Case(
            "embedding_bag_sum",
            lambda i, o: F.embedding_bag(i, torch.arange(30.0).reshape(10, 3), o, mode="sum"),
            lambda: (torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2, 2])),
        ),
        Case(
            "embedding_bag_mean",
            lambda i, o: F.embedding_bag(i, torch.arange(30.0).reshape(10, 3), o, mode="mean"),
            lambda: (torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2, 2])),
        ),
        Case(
            "embedding_bag_max",
            lambda i, o: F.embedding_bag(i, torch.arange(30.0).reshape(10, 3), o, mode="max"),
            lambda: (torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2, 2])),
        ),
        Case(
            "grid_sample_nearest_border",
            lambda a, g: F.grid_sample(a, g, "nearest", "border", align_corners=False),
            grid,
        ),
        Case(
            "grid_sample_bilinear_reflect",
            lambda a, g: F.grid_sample(a, g, "bilinear", "reflection", align_corners=True),
            grid,
        ),
        Case(
            "grid_sample_bicubic_zeros",
            lambda a, g: F.grid_sample(a, g, "bicubic", "zeros", align_corners=False),
            grid,
        ),
        Case("interp_area", lambda a: F.interpolate(a, (4, 5), mode="area"), img),
        Case("interp_bicubic", lambda a: F.interpolate(a, (13, 7), mode="bicubic", align_corners=False), img),
        Case("interp_bilinear_aa", lambda a: F.interpolate(a, (4, 5), mode="bilinear", antialias=True), img),
        Case("interp_bicubic_aa", lambda a: F.interpolate(a, (4, 5), mode="bicubic", antialias=True), img),
        Case(
            "ctc_loss",
            lambda lp, t: F.ctc_loss(lp.log_softmax(2), t, [6, 6], [3, 2]),
            lambda: (torch.randn(6, 2, 5), torch.tensor([[1, 2, 3], [2, 4, 0]])),
        ),
        Case("cross", lambda a, b: torch.cross(a, b, dim=1), r2((2, 3), (2, 3))),
        Case("linalg_cross", torch.linalg.cross, r2((4, 3), (4, 3))),
        Case("logaddexp", torch.logaddexp, r2((6,), (6,))),
        Case("hypot", torch.hypot, r2((6,), (6,))),
        Case("copysign", torch.copysign, r2((6,), (6,))),
        Case("frac", torch.frac, lambda: (torch.tensor([-2.5, -0.25, 0.0, 1.75, 3.0]),)),
        Case("fmod_neg", torch.fmod, signed),
        Case("remainder_neg", torch.remainder, signed),
        Case("lerp", lambda a, b: torch.lerp(a, b, 0.3), r2((5,), (5,))),
        Case("lerp_tensor_w", lambda a, b: torch.lerp(a, b, b.sigmoid()), r2((5,), (5,))),
        Case("addcmul", lambda a, b: torch.addcmul(a, a, b, value=0.5), r2((5,), (5,))),
        Case("addcdiv", lambda a, b: torch.addcdiv(a, a, b.exp(), value=2.0), r2((5,), (5,))),
        Case(
            "baddbmm",
            lambda a, b: torch.baddbmm(a[:, :, :2], a, b, beta=0.5, alpha=2.0),
            r2((2, 3, 4), (2, 4, 2)),
        ),
        Case("cumprod", lambda a: torch.cumprod(a, 1), r(2, 5)),
        Case("diff", lambda a: torch.diff(a, dim=1), r(2, 5)),
        Case("diff_n2", lambda a: torch.diff(a, n=2, dim=0), r(5, 2)),
        Case("count_nonzero", lambda a: torch.count_nonzero(a.round(), dim=1), r(3, 5)),
        Case("aminmax", lambda a: torch.aminmax(a, dim=1), r(3, 5)),
        Case("std_mean_corr", lambda a: torch.std_mean(a, dim=1, correction=2), r(3, 6)),
        Case("var_mean_corr", lambda a: torch.var_mean(a, dim=0, correction=0), r(3, 6)),
        Case("nanmean", lambda a: torch.nanmean(torch.where(a > 1, math.nan, a), dim=1), r(3, 6)),
        Case("nansum", lambda a: torch.nansum(torch.where(a > 1, math.nan, a)), r(3, 6)),
        Case("erfinv", torch.special.erfinv, lambda: (torch.rand(8) * 1.98 - 0.99,)),
        Case("i0", torch.special.i0, r(6)),
        Case(
            "xlogy",
            torch.special.xlogy,
            lambda: (torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 3.0, 0.5])),
        ),
        Case("logit", lambda a: torch.special.logit(a, eps=1e-3), pos(6)),
        Case("glu", lambda a: F.glu(a, 1), r(2, 6)),
        Case("hardtanh", lambda a: F.hardtanh(a, -0.5, 0.7), r(8)),
        Case("rrelu_eval", lambda a: F.rrelu(a, training=False), r(8)),
        Case("celu", lambda a: F.celu(a, 0.7), r(8)),
        Case("selu", F.selu, r(8)),
        Case("softsign", F.softsign, r(8)),
        Case("tanhshrink", F.tanhshrink, r(8)),
        Case("threshold", lambda a: F.threshold(a, 0.2, -1.0), r(8)),
        Case("local_response_norm", lambda a: F.local_response_norm(a, 3), r(1, 5, 4, 4)),
        Case("channel_shuffle", lambda a: F.channel_shuffle(a, 2), r(1, 6, 2, 2)),
        Case("pairwise_distance", F.pairwise_distance, r2((4, 5), (4, 5))),
        Case(
            "cosine_similarity_bcast",
            lambda a, b: F.cosine_similarity(a[:, None], b[None], dim=-1),
            r2((3, 5), (4, 5)),
        ),
        Case("cdist_p1", lambda a, b: torch.cdist(a, b, p=1.0), r2((3, 5), (4, 5))),
        Case("cdist_inf", lambda a, b: torch.cdist(a, b, p=math.inf), r2((3, 5), (4, 5))),
        Case("renorm", lambda a: torch.renorm(a, 2, 0, 1.0), r(3, 5)),
        # more
        Case("triu", lambda a: torch.triu(a, 1), r(4, 4)),
        Case("tril_neg", lambda a: torch.tril(a, -1), r(2, 4, 4)),
        Case("flip", lambda a: torch.flip(a, (0, 2)), r(2, 3, 4)),
        Case("logdet", torch.logdet, lambda: (torch.eye(3) * 2 + 0.1 * torch.randn(3, 3),), rtol=1e-5),
        Case("slogdet", torch.linalg.slogdet, spd(3), rtol=1e-5),
        Case("trapezoid", lambda a: torch.trapezoid(a, dim=1), r(2, 5)),
        Case("cumulative_trapezoid", lambda a: torch.cumulative_trapezoid(a, dim=1), r(2, 5)),
        Case("signbit", torch.signbit, r(6)),
        Case("sinc", torch.sinc, r(6)),
        Case("logsumexp", lambda a: torch.logsumexp(a, 1), r(2, 6)),
        Case("mish", F.mish, r(8)),
        Case("hardswish", F.hardswish, r(8)),
        Case("softmin", lambda a: F.softmin(a, 1), r(2, 6)),
        Case("gumbel_free_normalize", lambda a: F.normalize(a, p=1.0, dim=0), r(4, 3)),
        Case("normalize_inf", lambda a: F.normalize(a, p=math.inf, dim=1), r(4, 3)),
        Case("vector_norm_3", lambda a: torch.linalg.vector_norm(a, 3, dim=1), r(4, 3)),
        Case("vector_norm_0", lambda a: torch.linalg.vector_norm(a.round(), 0, dim=1), r(4, 3)),
        Case("norm_nuc", lambda a: torch.linalg.matrix_norm(a, "nuc"), r(3, 3)),
        Case("outer", torch.outer, r2((3,), (4,))),
        Case("chain_matmul", lambda a, b: torch.chain_matmul(a, b, a.T), r2((3, 4), (4, 4))),
        Case("mv", torch.mv, r2((3, 4), (4,))),
        Case("ger", torch.ger, r2((3,), (4,))),
        Case("dot", torch.dot, r2((5,), (5,))),
        Case("matrix_exp", torch.linalg.matrix_exp, lambda: (0.3 * torch.randn(3, 3),), rtol=1e-4),
        Case(
            "triangular_solve",
            lambda a, b: torch.linalg.solve_triangular(a.triu() + 3 * torch.eye(3), b, upper=True),
            r2((3, 3), (3, 2)),
            rtol=1e-5,
        ),
        Case(
            "solve", lambda a, b: torch.linalg.solve(a + 3 * torch.eye(3), b), r2((3, 3), (3, 2)), rtol=1e-4
        ),
        Case("inv", lambda a: torch.linalg.inv(a + 3 * torch.eye(3)), r(3, 3), rtol=1e-4),
        Case("cholesky", lambda a: torch.linalg.cholesky(a @ a.T + torch.eye(3)), r(3, 3), rtol=1e-5),
        Case("amax_multi", lambda a: torch.amax(a, (0, 2)), r(2, 3, 4)),
        Case("argmax_keepdim", lambda a: torch.argmax(a, 1, keepdim=True), r(2, 5)),
        Case("topk_smallest", lambda a: torch.topk(a, 2, largest=False), r(2, 5)),
        Case("mode", lambda a: torch.mode(a.round(), 1), r(2, 7)),
        Case("nanmedian", lambda a: torch.nanmedian(a, 1), r(2, 5)),
        Case("quantile", lambda a: torch.quantile(a, 0.3, dim=1), r(2, 5)),
        Case("bitwise_not_bool", lambda a: torch.bitwise_not(a > 0).float(), r(5)),
        Case("logical_xor", lambda a, b: torch.logical_xor(a > 0, b > 0).float(), r2((5,), (5,))),
        Case("clamp_min_tensor", lambda a, b: torch.clamp_min(a, b), r2((5,), (5,))),
        Case("where_scalar", lambda a: torch.where(a > 0, a, 0.0), r(5)),
        Case("masked_fill", lambda a: a.masked_fill(a > 0.5, -1.0), r(5)),
        Case("index_select", lambda a: torch.index_select(a, 1, torch.tensor([2, 0])), r(2, 3)),
        Case("narrow", lambda a: torch.narrow(a, 1, 1, 2), r(2, 4)),
        Case("unbind", lambda a: torch.unbind(a, 1)[1], r(2, 3)),
        Case("hsplit", lambda a: torch.hsplit(a, 2)[1], r(2, 4)),
        Case("flatten_unflatten", lambda a: a.flatten(1).unflatten(1, (4, 3)), r(2, 3, 4)),
        Case("atleast_3d", torch.atleast_3d, r(4)),
        Case(
            "heaviside",
            lambda a: torch.heaviside(a, torch.tensor(0.5)),
            lambda: (torch.tensor([-1.0, 0.0, 2.0]),),
        ),
        Case("sign", torch.sign, lambda: (torch.tensor([-1.0, 0.0, 2.0, math.nan]),)),
        Case("clamp_int", lambda a: (a * 4).long().clamp(-2, 3), r(6)),
        Case("exp2", torch.exp2, r(6)),
        Case("log_softmax_dtype", lambda a: F.log_softmax(a, 1), r(2, 6)),
        Case("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), r(6)),
        Case("silu", F.silu, r(6)),
        Case("hardsigmoid", F.hardsigmoid, r(6)),
        Case("logsigmoid", F.logsigmoid, r(6)),
        Case("softplus_beta", lambda a: F.softplus(a, 2.0, 5.0), r(6)),
        Case("elu_alpha", lambda a: F.elu(a, 0.5), r(6)),
        Case("leaky_relu", lambda a: F.leaky_relu(a, 0.2), r(6)),
        Case("relu6", F.relu6, r(6)),
        Case("group_norm", lambda a: F.group_norm(a, 2), r(2, 4, 3)),
        Case("layer_norm_nobias", lambda a: F.layer_norm(a, (3,)), r(2, 4, 3)),
        Case("batch_norm_eval", lambda a: F.batch_norm(a, torch.zeros(4), torch.ones(4) * 2), r(2, 4, 3)),
        Case("instance_norm", F.instance_norm, r(2, 4, 5)),
        Case("adaptive_avg_pool1d", lambda a: F.adaptive_avg_pool1d(a, 3), r(2, 3, 7)),
        Case("adaptive_max_pool1d", lambda a: F.adaptive_max_pool1d(a, 3), r(2, 3, 7)),
        Case("adaptive_max_pool2d_global", lambda a: F.adaptive_max_pool2d(a, 1) * 2, img),
        Case("adaptive_max_pool2d_uneven", lambda a: F.adaptive_max_pool2d(a, (4, 3)) * 2, img),
        Case(
            "adaptive_max_pool1d_idx", lambda a: F.adaptive_max_pool1d(a, 3, return_indices=True), r(2, 3, 7)
        ),
        Case("max_pool1d_idx", lambda a: F.max_pool1d(a, 2, return_indices=True), r(2, 3, 8)),
        Case("lp_pool2d", lambda a: F.lp_pool2d(a, 2.0, 2), img),
        Case("lp_pool1d", lambda a: F.lp_pool1d(a, 3.0, 2), r(1, 3, 8)),
        Case("avg_pool3d", lambda a: F.avg_pool3d(a, 2), r(1, 2, 4, 4, 4)),
        Case(
            "upsample_nearest3d", lambda a: F.interpolate(a, scale_factor=2, mode="nearest"), r(1, 2, 2, 3, 3)
        ),
        Case("one_hot", lambda a: F.one_hot(a, 5).float(), lambda: (torch.tensor([0, 3, 1, 4]),)),
        Case("argsort_desc", lambda a: torch.argsort(a, 1, descending=True), r(2, 5)),
        Case("sort_values", lambda a: torch.sort(a, 0)[0], r(4, 3)),
        Case("cumsum_int", lambda a: torch.cumsum((a > 0).int(), 1), r(2, 6)),
        Case("unique_sorted", lambda a: torch.unique(a), lambda: (torch.tensor([3.0, 1.0, 3.0, 2.0]),)),
        Case("nonzero", lambda a: torch.nonzero(a > 0), r(6)),
        Case("repeat", lambda a: a.repeat(2, 1, 3), r(2, 3)),
        Case("expand_as", lambda a, b: a.expand_as(b), r2((1, 3), (4, 3))),
        Case("meshgrid_xy", lambda a, b: torch.meshgrid(a, b, indexing="xy")[0], r2((3,), (4,))),
        Case("polar", lambda a, b: torch.view_as_real(torch.polar(a.abs(), b)), r2((4,), (4,))),
        Case(
            "stft_mag",
            lambda a: torch.stft(a, 8, 4, window=torch.hann_window(8), return_complex=True).abs(),
            r(1, 32),
        ),
        Case("rfft_abs", lambda a: torch.fft.rfft(a).abs(), r(2, 8)),
        Case("fft_abs", lambda a: torch.fft.fft(a, dim=0).abs(), r(8, 2)),
        Case("irfft", lambda a: torch.fft.irfft(torch.fft.rfft(a), n=8), r(2, 8)),
        Case("hann_window", lambda a: a * torch.hann_window(a.shape[-1]), r(2, 8)),
        Case("hamming_window_np", lambda a: a * torch.hamming_window(8, False, 0.5, 0.4), r(2, 8)),
        Case("kaiser_window", lambda a: a * torch.kaiser_window(8, True, 6.0), r(2, 8)),
        Case("blackman_window", lambda a: a * torch.blackman_window(8, periodic=False), r(2, 8)),
        Case("fftshift", lambda a: torch.fft.fftshift(a, dim=-1), r(2, 6)),
        Case("special_log_ndtr", torch.special.log_ndtr, r(6)),
        Case("special_expit", torch.special.expit, r(6)),
        Case("special_zeta", lambda a: torch.special.zeta(a + 2.5, torch.tensor(1.5)), pos(4)),
        Case("special_bessel_j0", torch.special.bessel_j0, r(6)),
        Case("special_bessel_j1", torch.special.bessel_j1, r(6)),
        Case("special_gammainc", lambda a, b: torch.special.gammainc(a.abs() + 0.5, b.abs()), r2((6,), (6,))),
        Case("special_spherical_bessel_j0", torch.special.spherical_bessel_j0, r(6)),
        Case("igamma", lambda a, b: torch.igamma(a.abs() + 0.5, b.abs()), r2((6,), (6,))),
        Case("nextafter", lambda a, b: torch.nextafter(a, b), r2((6,), (6,))),
        Case("frexp", lambda a: torch.frexp(a)[0], r(6)),
        Case(
            "gcd",
            lambda a, b: torch.gcd(a, b),
            lambda: (torch.tensor([12, 18, -7, 0]), torch.tensor([8, 12, 21, 5])),
        ),
        Case(
            "lcm",
            lambda a, b: torch.lcm(a, b),
            lambda: (torch.tensor([12, 18, 7, 0]), torch.tensor([8, 12, 21, 5])),
        ),
        Case(
            "bitwise_shift",
            lambda a: torch.bitwise_left_shift(a, 2),
            lambda: (torch.tensor([1, 3, 7], dtype=torch.int32),),
        ),
        Case("pdist", F.pdist, r(4, 3)),
        Case("triplet_margin", lambda a, b: F.triplet_margin_loss(a, b, b.flip(0)), r2((4, 3), (4, 3))),
        Case(
            "cross_entropy_ls",
            lambda a: F.cross_entropy(a, torch.tensor([1, 0, 3]), label_smoothing=0.1),
            r(3, 5),
        ),
        Case(
            "kl_div",
            lambda a, b: F.kl_div(a.log_softmax(1), b.softmax(1), reduction="batchmean"),
            r2((3, 5), (3, 5)),
        ),
        Case("huber", lambda a, b: F.huber_loss(a, b, delta=0.5), r2((3, 5), (3, 5))),
        Case("smooth_l1", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), r2((3, 5), (3, 5))),
        Case(
            "bce_logits", lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()), r2((3, 5), (3, 5))
        ),
        Case("nll_loss", lambda a: F.nll_loss(a.log_softmax(1), torch.tensor([1, 0, 3])), r(3, 5)),
        Case(
            "margin_ranking",
            lambda a, b: F.margin_ranking_loss(a, b, torch.tensor([1.0, -1.0, 1.0])),
            r2((3,), (3,)),
        ),
        Case("soft_margin", lambda a, b: F.soft_margin_loss(a, b.sign()), r2((3, 5), (3, 5))),
        Case("poisson_nll", lambda a, b: F.poisson_nll_loss(a, b.abs()), r2((3, 5), (3, 5))),
        Case("gaussian_nll", lambda a, b: F.gaussian_nll_loss(a, b, torch.ones(3, 5)), r2((3, 5), (3, 5))),
        Case("cov", lambda a: torch.cov(a), r(3, 6)),
        Case("corrcoef", torch.corrcoef, r(3, 6)),
        Case("atan2_", torch.atan2, r2((6,), (6,))),
        Case("addmm", lambda a, b: torch.addmm(a[:, :2], a, b, beta=0.5), r2((3, 4), (4, 2))),
        Case("bmm", torch.bmm, r2((2, 3, 4), (2, 4, 2))),
        Case("einsum_trace", lambda a: torch.einsum("ii->", a), r(4, 4)),
        Case("einsum_diag", lambda a: torch.einsum("ii->i", a), r(4, 4)),
        Case("diagflat", lambda a: torch.diagflat(a), r(4)),
        Case("take", lambda a: torch.take(a, torch.tensor([0, 5, 11])), r(3, 4)),
        Case("put", lambda a: a.put(torch.tensor([0, 5]), torch.tensor([9.0, 8.0])), r(3, 4)),
        Case(
            "index_reduce",
            lambda a, s: a.index_reduce(0, torch.tensor([0, 2, 0]), s, "amax"),
            r2((3, 4), (3, 4)),
        ),
        Case("bernoulli_p0", lambda a: a * torch.bernoulli(torch.ones_like(a)), r(4)),
        Case("fliplr", torch.fliplr, r(3, 4)),
        Case("square", torch.square, r(4)),
        Case("float_power", lambda a: torch.float_power(a.abs(), 2.5), r(4)),
        Case("positive_pow_tensor", lambda a, b: torch.pow(a.abs() + 0.1, b), r2((4,), (4,))),
        Case("clamp_tensor_bounds", lambda a, b: torch.clamp(a, b - 1, b + 1), r2((4,), (4,))),
        Case("dropout_eval", lambda a: F.dropout(a, 0.5, training=False), r(4)),
        Case("alpha_dropout_eval", lambda a: F.alpha_dropout(a, 0.5, training=False), r(4)),
        Case("feature_alpha_dropout", lambda a: F.feature_alpha_dropout(a, 0.5, training=False), r(1, 2, 4)),
        Case(
            "affine_grid_3d",
            lambda t: F.affine_grid(t, (1, 1, 2, 3, 4), align_corners=False),
            lambda: (torch.randn(1, 3, 4),),
        ),
        Case("pad_reflect3d", lambda a: F.pad(a, (1, 1, 1, 0, 0, 1), mode="reflect"), r(1, 1, 3, 3, 3)),
        Case("pad_replicate1d", lambda a: F.pad(a, (2, 1), mode="replicate"), r(1, 2, 4)),
        # the rewrites docs/convert.md gives for what stays refused
        Case(
            "rewrite_max_pool1d_idx",
            lambda a: [t.squeeze(-2) for t in F.max_pool2d(a.unsqueeze(-2), (1, 2), return_indices=True)],
            r(2, 3, 8),
        ),
        Case("rewrite_pdist", lambda a: torch.cdist(a, a)[tuple(torch.triu_indices(4, 4, 1))], r(4, 3)),
        Case("rewrite_trapezoid", lambda a: ((a[:, 1:] + a[:, :-1]) * 0.5).sum(1), r(2, 5)),
        Case("rewrite_einsum_trace", lambda a: torch.diagonal(a).sum(), r(4, 4)),
        Case(
            "rewrite_conv_tbc",
            lambda a: F.conv1d(
                a.permute(1, 2, 0), torch.linspace(-1, 1, 24).reshape(3, 2, 4).permute(2, 1, 0)
            ).permute(2, 0, 1),
            r(5, 1, 2),
        ),
        Case(
            "rewrite_polar",
            lambda a, b: torch.stack((a.abs() * torch.cos(b), a.abs() * torch.sin(b)), -1),
            r2((4,), (4,)),
        ),
        Case(
            "rewrite_quantile",
            lambda a: torch.sort(a, 1).values[:, 1] * 0.8 + torch.sort(a, 1).values[:, 2] * 0.2,
            r(2, 5),
        ),
        Case("rewrite_shift", lambda a: a * 4, lambda: (torch.tensor([1, 3, 7], dtype=torch.int32),)),
        Case(
            "rewrite_cov",
            lambda a: (a - a.mean(1, keepdim=True)) @ (a - a.mean(1, keepdim=True)).T / 5,
            r(3, 6),
        ),
        Case(
            "conv_tbc",
            lambda a: torch.conv_tbc(a, torch.linspace(-1, 1, 24).reshape(3, 2, 4), torch.zeros(4), 1),
            r(5, 1, 2),
        ),
    ]


def _compare(got: list, expected: list, rtol: float) -> str | None:
    import numpy as np

    if len(got) != len(expected):
        return f"{len(got)} outputs, PyTorch {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        g = np.asarray(g)
        if e.ndim == 0 and g.shape == (1,):
            g = g.reshape(())
        if g.shape != e.shape:
            return f"output {i}: shape {g.shape}, PyTorch {e.shape}"
        if e.dtype.kind in "iub":
            if not np.array_equal(g.astype(np.float64), e.astype(np.float64)):
                return f"output {i}: integers differ ({g.ravel()[:6]} vs {e.ravel()[:6]})"
            continue
        g64, e64 = g.astype(np.float64), e.astype(np.float64)
        if not np.array_equal(np.isnan(g64), np.isnan(e64)):
            return f"output {i}: NaN placement differs"
        inf = np.isinf(e64)
        if not np.array_equal(g64[inf], e64[inf]) or np.isinf(g64[~inf]).any():
            return f"output {i}: inf placement differs"
        finite = np.isfinite(e64)
        scale = max(float(np.abs(e64[finite]).max(initial=0.0)), 1e-30)
        err = float(np.abs(g64[finite] - e64[finite]).max(initial=0.0)) / scale
        if err > rtol:
            return f"output {i}: max error {err:.2e} of the max (rtol {rtol:g})"
    return None


def probe(case: Case, frontend: str) -> tuple[str, str]:
    """(status, detail) of one case on one frontend."""
    import torch

    from devicefit import interp
    from devicefit.convert import ConversionError, ConvertOptions, convert
    from tests.convert.elementwise_helpers import Fn
    from tests.convert.helpers import source_of

    torch.manual_seed(0)
    inputs = case.inputs()
    try:
        source = source_of(Fn(case.fn).eval(), inputs)
        reference = source.reference(source.example_inputs)
    except Exception as e:  # PyTorch itself fails on the case
        return "torch", f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    try:
        result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    except ConversionError as e:
        return "refused", str(e).splitlines()[0][:240]
    except Exception as e:
        return "refused", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    try:
        outputs = interp.load(result.mlmodel).run(
            source.coreml_feeds(source.example_inputs), precision="fp32"
        )
        got = [outputs[name] for name in reference]
    except Exception as e:
        return "interp", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    wrong = _compare(got, list(reference.values()), case.rtol)
    rescued = ",".join(sorted(result.scan.rescued))
    return ("WRONG", wrong) if wrong else ("ok", f"rescued: {rescued}" if rescued else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--frontends", default="torchscript,torch.export")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    only = {n for n in args.only.split(",") if n}
    counts: dict[str, int] = {}
    for case in _cases():
        if only and case.name not in only:
            continue
        for frontend in args.frontends.split(","):
            status, detail = probe(case, frontend)
            counts[status] = counts.get(status, 0) + 1
            print(f"{case.name:<30} {frontend:<12} {status:<8} {detail}", flush=True)
    print(" ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 1 if counts.get("WRONG") or counts.get("interp") else 0


if __name__ == "__main__":
    sys.exit(main())
