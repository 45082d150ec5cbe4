"""Complex-number glue coremltools 9.0 lacks: ``view_as_complex`` and the 2-D FFT names.

A learned complex filter is stored as a real ``(..., 2)`` parameter and turned complex by ``view_as_complex``
(GFNet's global filter); ``torch.fft.rfft2`` / ``irfft2`` / ``fft2`` / ``ifft2`` are the n-dimensional
transforms over the last two axes, which coremltools translates under their ``n`` names.
"""

from __future__ import annotations

from typing import Any

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue


@rescue("view_as_complex", "coremltools 9.0 has no translation (GFNet: a real (..., 2) filter made complex)")
def view_as_complex(context: Any, node: Any) -> None:
    """``torch.view_as_complex(x)``: ``x[..., 0] + i x[..., 1]`` in coremltools' complex dialect."""
    from coremltools.converters.mil.mil import Builder as mb

    x = frontend()._get_inputs(context, node, expected=1)[0]
    if x.shape[-1] != 2:
        raise ValueError(f"view_as_complex needs a last axis of size 2, got shape {x.shape}")
    real, imag = mb.split(x=x, num_splits=2, axis=-1)
    out = mb.complex(
        real_data=mb.squeeze(x=real, axes=[-1]), imag_data=mb.squeeze(x=imag, axes=[-1]), name=node.name
    )
    context.add(out, node.name)


def _two_d(target: str) -> Any:
    def translate(context: Any, node: Any) -> None:
        """The 2-D transform as coremltools' n-dimensional one: the same arguments (input, s, dim, norm), whose
        ``dim`` TorchScript records explicitly (``(-2, -1)`` by default)."""
        from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

        inputs = frontend()._get_inputs(context, node, min_expected=1)
        if len(inputs) < 3 or inputs[2] is None:
            raise NotImplementedError(f"{node.kind} without its dim argument (torch.export decomposes it)")
        kind = node.kind
        node.kind = target  # NOTE: coremltools' translation may read the kind it is registered under
        try:
            _TORCH_OPS_REGISTRY.get_func(target)(context, node)
        finally:
            node.kind = kind

    return translate


for _name, _target in (
    ("fft_rfft2", "fft_rfftn"),
    ("fft_irfft2", "fft_irfftn"),
    ("fft_fft2", "fft_fftn"),
    ("fft_ifft2", "fft_ifftn"),
):
    rescue(_name, f"coremltools 9.0 has no translation (torch.fft.{_name[4:]}); the values are {_target}'s")(
        _two_d(_target)
    )
