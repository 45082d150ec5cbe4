"""Ops round 4 of the outside sweep found without a coremltools 9.0 translation, against PyTorch through the
interpreter: ``vdot`` (``parametrizations.spectral_norm`` computes sigma with it: every SN-GAN discriminator),
``fft_rfft2`` / ``fft_irfft2`` / ``fft_fft2`` / ``fft_ifft2`` and ``view_as_complex`` (GFNet's global filter),
``embedding_renorm_`` (``nn.Embedding(max_norm=...)``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued


def test_vdot():
    a, b = torch.randn(7, generator=torch.Generator().manual_seed(0)), torch.randn(7)
    check_rescued(lambda x, y: torch.vdot(x, y) * x, (a, b), "torchscript", "vdot", 1e-6)


def test_spectral_norm_in_eval():
    torch.manual_seed(0)
    layer = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(6, 4)).eval()
    check_rescued(layer, (torch.randn(3, 6),), "torchscript", "vdot", 1e-5, atol=1e-6)


class GlobalFilter(torch.nn.Module):
    """GFNet: a learned complex filter applied in the 2-D Fourier domain."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(6, 4, 3, 2, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.fft.rfft2(x, dim=(1, 2), norm="ortho") * torch.view_as_complex(self.weight)
        return torch.fft.irfft2(y, s=(6, 6), dim=(1, 2), norm="ortho")


def test_rfft2_irfft2_and_view_as_complex():
    x = torch.randn(2, 6, 6, 3, generator=torch.Generator().manual_seed(0))
    for op in ("fft_rfft2", "fft_irfft2", "view_as_complex"):
        check_rescued(GlobalFilter().eval(), (x,), "torchscript", op, 1e-4, atol=1e-5)


def test_fft2_ifft2():
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    for op in ("fft_fft2", "fft_ifft2"):
        check_rescued(
            lambda t: torch.fft.ifft2(torch.fft.fft2(t) * 2.0).real, (x,), "torchscript", op, 1e-5, atol=1e-6
        )


class MaxNormLookup(torch.nn.Module):
    def __init__(self, norm_type: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(20, 5, max_norm=1.0, norm_type=norm_type)
        with torch.no_grad():
            self.emb.weight[:10] *= 0.1  # some rows already within the bound: left as they are

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.relu(self.emb(ids))


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm(norm_type):
    # TorchScript only: torch.export makes the in-place renorm a parameter mutation, which coremltools refuses
    ids = torch.tensor([[1, 3, 3, 12], [19, 0, 5, 12]])
    check_rescued(MaxNormLookup(norm_type).eval(), (ids,), "torchscript", "embedding_renorm", 1e-6)


class ISTFTHead(torch.nn.Module):
    """Vocos' head: magnitude and phase from a linear layer, a complex spectrum, ``torch.istft``."""

    def __init__(
        self, n_fft: int, hop: int, win_length: int | None, center: bool, length: int | None
    ) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.out = torch.nn.Linear(8, n_fft + 2)
        self.register_buffer("window", torch.hann_window(win_length or n_fft))
        self.n_fft, self.hop, self.win_length, self.center, self.length = (
            n_fft,
            hop,
            win_length,
            center,
            length,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(mag.clamp(max=3.0))
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        return torch.istft(
            spec,
            self.n_fft,
            self.hop,
            self.win_length,
            window=self.window,
            center=self.center,
            length=self.length,
        )


@pytest.mark.parametrize(
    ("n_fft", "hop", "win_length", "center", "length"),
    [(16, 4, None, True, None), (16, 4, 12, True, 30), (16, 8, None, True, None), (8, 2, None, True, 21)],
)
def test_istft(n_fft, hop, win_length, center, length):
    x = torch.randn(2, 9, 8, generator=torch.Generator().manual_seed(0))
    check_rescued(
        ISTFTHead(n_fft, hop, win_length, center, length).eval(),
        (x,),
        "torchscript",
        "istft",
        1e-4,
        atol=1e-5,
    )
