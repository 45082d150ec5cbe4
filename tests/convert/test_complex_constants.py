"""A complex constant in a traced graph (``x + 1j * y``, as Vocos builds its spectrum) crashed coremltools while it
read the graph ("'torch._C.Node' object has no attribute 'cs'"), with no op or line named. The trace's complex
constants are split into ``complex(real, imag)`` of two real constants first, which coremltools translates."""

from __future__ import annotations

import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn


class Spectrum(torch.nn.Module):
    def forward(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        spec = mag * (torch.cos(phase) + 1j * torch.sin(phase))
        rotated = spec * (0.5 - 2j)
        return torch.fft.irfft(rotated, n=8, dim=-1)


def test_complex_constants_convert_and_match_pytorch():
    gen = torch.Generator().manual_seed(0)
    mag, phase = torch.rand(2, 5, generator=gen), torch.randn(2, 5, generator=gen)
    got, expected, _ = run_fn(Spectrum().eval(), (mag, phase), "torchscript")
    assert_close_elementwise(got[0], expected[0], rtol=1e-5, atol=1e-6)
