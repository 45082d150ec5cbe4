"""Normalization ops through MIL programs against numpy (float64): axes that are negative, not trailing or
all; ranks 3 to 5; gamma / beta / epsilon given or defaulted."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog

RNG = np.random.default_rng(5)


def _rand(*shape):
    return (RNG.standard_normal(shape) * 2 + 0.5).astype(np.float32)


def _normalize(x, axes, eps):
    x = x.astype(np.float64)
    mean = x.mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axes, keepdims=True) + eps)


def _channel(v, rank):
    return v.reshape((1, -1) + (1,) * (rank - 2))


LAYER_NORM = [  # shape, axes (None: all)
    ((2, 3, 4), [-1]),
    ((2, 3, 4, 5), [-2, -1]),
    ((2, 3, 4, 5), [1]),  # not trailing: gamma has shape (3,) and applies along axis 1
    ((2, 3, 4, 5), [0, 2]),
    ((3, 4), [0, 1]),  # all axes (coremltools' builder cannot build the axes=None default: range(rank))
    ((2, 1, 3, 2, 4), [-3, -1]),
]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,axes", LAYER_NORM)
def test_layer_norm(shape, axes, affine):
    from coremltools.converters.mil import Builder as mb

    x = _rand(*shape)
    norm_axes = tuple(range(len(shape))) if axes is None else tuple(a % len(shape) for a in axes)
    norm_shape = tuple(shape[a] for a in norm_axes)
    gamma, beta = _rand(*norm_shape), _rand(*norm_shape)
    kw = {"gamma": gamma, "beta": beta} if affine else {}
    if axes is not None:
        kw["axes"] = axes

    def prog(x):
        return mb.layer_norm(x=x, epsilon=1e-3, **kw)

    expected = _normalize(x, norm_axes, 1e-3)
    if affine:
        # gamma's axes are x's normalized axes, in order: place them there, size 1 elsewhere
        view = [shape[a] if a in norm_axes else 1 for a in range(len(shape))]
        expected = expected * gamma.reshape(view) + beta.reshape(view)
    out = milprog.run(prog, {"x": x}, op="layer_norm")
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5)])
def test_instance_norm(shape):
    from coremltools.converters.mil import Builder as mb

    x, gamma, beta = _rand(*shape), _rand(shape[1]), _rand(shape[1])

    def prog(x):
        return mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-2)

    axes = tuple(range(2, len(shape)))
    expected = _normalize(x, axes, 1e-2) * _channel(gamma, len(shape)) + _channel(beta, len(shape))
    np.testing.assert_allclose(
        milprog.run(prog, {"x": x}, op="instance_norm"), expected, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3, 1, 1), (1, 2, 1, 1, 1)])
def test_instance_norm_of_one_spatial_element(shape):
    # one value per sample and channel: mean is the value, variance 0, so the result is beta. The kernel's fast
    # path (F.instance_norm, a training-mode batch norm) raised "Expected more than 1 spatial element" instead
    # (the differential fuzzer, tests/interp/difffuzz.py, seed 2367)
    from coremltools.converters.mil import Builder as mb

    x, gamma, beta = _rand(*shape), _rand(shape[1]), _rand(shape[1])

    def prog(x):
        return mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-2)

    expected = np.broadcast_to(_channel(beta, len(shape)), shape)
    np.testing.assert_allclose(
        milprog.run(prog, {"x": x}, op="instance_norm"), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5), (1, 3, 2, 3, 4)])
def test_batch_norm(shape):
    from coremltools.converters.mil import Builder as mb

    x = _rand(*shape)
    mean, var, gamma, beta = _rand(3), np.abs(_rand(3)) + 0.1, _rand(3), _rand(3)

    def prog(x):
        return mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3)

    r = len(shape)
    expected = (x - _channel(mean, r)) / np.sqrt(_channel(var, r) + 1e-3) * _channel(gamma, r) + _channel(
        beta, r
    )
    np.testing.assert_allclose(milprog.run(prog, {"x": x}, op="batch_norm"), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5), (2, 2, 2, 3, 4)])
def test_l2_norm_over_last_three_axes(shape):
    from coremltools.converters.mil import Builder as mb

    x = _rand(*shape)

    def prog(x):
        return mb.l2_norm(x=x, epsilon=1e-6)

    x64 = x.astype(np.float64)
    expected = x64 / np.sqrt((x64**2).sum((-3, -2, -1), keepdims=True) + 1e-6)
    np.testing.assert_allclose(milprog.run(prog, {"x": x}, op="l2_norm"), expected, rtol=1e-5, atol=1e-6)


def test_local_response_norm_over_channels():
    from coremltools.converters.mil import Builder as mb

    x = _rand(1, 6, 3, 4)
    size, alpha, beta, k = 3, 1e-2, 0.75, 2.0

    def prog(x):
        return mb.local_response_norm(x=x, size=size, alpha=alpha, beta=beta, k=k)

    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)])
    window = np.stack([sq[:, c : c + size].sum(1) for c in range(6)], 1)
    expected = x / (k + alpha / size * window) ** beta
    out = milprog.run(prog, {"x": x}, op="local_response_norm")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
