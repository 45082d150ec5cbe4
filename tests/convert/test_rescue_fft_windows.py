"""``torch.fft.fft`` / ``ifft`` / ``rfft`` / ``irfft`` on torch.export (coremltools 9.0 expects the defaults it
leaves out) and the signal windows of constant length (``hann_window`` on torch.export, ``hamming`` / ``blackman``
/ ``bartlett`` / ``kaiser`` anywhere) against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


def test_rfft_on_torch_export():
    torch.manual_seed(0)
    x = torch.randn(3, 8)
    check_rescued(lambda t: torch.fft.rfft(t).abs(), (x,), "torch.export", "fft_rfft", rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_irfft_on_torch_export():
    x = torch.randn(3, 8)
    roundtrip = lambda t: torch.fft.irfft(torch.fft.rfft(t), n=8)  # noqa: E731
    check_rescued(roundtrip, (x,), "torch.export", "fft_irfft", rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fft_ifft_on_torch_export():
    x = torch.randn(2, 6)
    fn = lambda t: torch.fft.ifft(torch.fft.fft(t, dim=0)).real  # noqa: E731
    check_rescued(fn, (x,), "torch.export", "fft_ifft", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "window",
    [
        lambda: torch.hann_window(8),
        pytest.param(lambda: torch.hamming_window(8, False, 0.5, 0.4), marks=pytest.mark.slow),
        pytest.param(lambda: torch.kaiser_window(8, True, 6.0), marks=pytest.mark.slow),
        pytest.param(lambda: torch.blackman_window(7, periodic=False), marks=pytest.mark.slow),
        pytest.param(lambda: torch.bartlett_window(9), marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_windows_are_pytorchs_values(frontend, window):
    size = window().shape[0]
    x = torch.randn(2, size)
    name = next(
        n for n in ("hann", "hamming", "kaiser", "blackman", "bartlett") if n in window.__code__.co_names[1]
    )
    check_rescued(lambda t: t * window(), (x,), frontend, f"{name}_window")
