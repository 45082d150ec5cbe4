"""Complex-number ops coremltools 9.0 lacks: ``view_as_complex``, the 2-D FFT names and ``istft``; the 1-D FFTs on
torch.export (defaults left out) and the signal windows (``hann_window`` ...) of constant length.

A learned complex filter is stored as a real ``(..., 2)`` parameter and turned complex by ``view_as_complex``
(GFNet's global filter); ``torch.fft.rfft2`` / ``irfft2`` / ``fft2`` / ``ifft2`` are the n-dimensional
transforms over the last two axes, which coremltools translates under their ``n`` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


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


@rescue("istft", "coremltools 9.0 has no translation (torch.istft: Vocos / iSTFTNet vocoder heads)")
def istft(context: Any, node: Any) -> None:
    """``torch.istft(spec, n_fft, hop, win_length, window, center, normalized, onesided, length, return_complex)``
    of a one-sided spectrum ``(B, n_fft // 2 + 1, T)``: each frame's inverse real FFT (coremltools' complex
    dialect), times the window, overlap-added by a transposed convolution whose kernel is the identity (frame
    sample ``k`` lands at ``t * hop + k``), divided by the overlapped squared window (PyTorch's envelope),
    ``n_fft // 2`` trimmed from each end when centred. Static frame counts, a constant window."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    value = [const_value(v) if v is not None else None for v in inputs]
    if value[1] is None:
        raise NotImplementedError("istft with n_fft computed at run time")
    x, n_fft = inputs[0], int(value[1])
    hop = int(value[2]) if len(value) > 2 and value[2] is not None else n_fft // 4
    win_length = int(value[3]) if len(value) > 3 and value[3] is not None else n_fft
    window = value[4] if len(value) > 4 else None
    center = bool(value[5]) if len(value) > 5 and value[5] is not None else True
    normalized = bool(value[6]) if len(value) > 6 and value[6] is not None else False
    onesided = value[7] if len(value) > 7 else None
    length = int(value[8]) if len(value) > 8 and value[8] is not None else None
    if len(inputs) > 4 and inputs[4] is not None and window is None:
        raise NotImplementedError("istft with a window computed at run time")
    if (len(value) > 9 and value[9]) or onesided is False:
        raise NotImplementedError("istft of a two-sided spectrum or to a complex signal")
    frames_count = x.shape[-1]
    if not isinstance(frames_count, int | np.integer):
        raise NotImplementedError("istft over a flexible number of frames")
    w = np.ones(win_length, np.float32) if window is None else np.asarray(window, np.float32)
    left = (n_fft - w.shape[0]) // 2  # a shorter window is centred in the frame, as PyTorch pads it
    w = np.pad(w, (left, n_fft - w.shape[0] - left))
    batched = x.rank == 3
    if not batched:
        x = mb.expand_dims(x=x, axes=[0])
    frames = mb.complex_irfft(data=x, n=n_fft, dim=1, norm="backward")  # (B, n_fft, T)
    scale = w * np.float32(np.sqrt(n_fft) if normalized else 1.0)
    frames = mb.mul(x=frames, y=scale.reshape(n_fft, 1))
    identity = np.eye(n_fft, dtype=np.float32).reshape(n_fft, 1, n_fft)
    signal = mb.conv_transpose(x=frames, weight=identity, strides=[hop], pad_type="valid")  # (B, 1, L)
    total = (int(frames_count) - 1) * hop + n_fft
    envelope = np.zeros(total, np.float32)
    for t in range(int(frames_count)):
        envelope[t * hop : t * hop + n_fft] += w * w
    start = n_fft // 2 if center else 0
    end = start + length if length is not None else total - (n_fft // 2 if center else 0)
    end = min(end, total)  # NOTE: a longer ``length`` is zero-padded by PyTorch
    signal = mb.slice_by_index(x=signal, begin=[0, 0, start], end=[0, 0, end], begin_mask=[True, True, False],
                               end_mask=[True, True, False])  # fmt: skip
    signal = mb.real_div(x=signal, y=np.maximum(envelope[start:end], 1e-11).reshape(1, 1, -1))
    if length is not None and length > end - start:
        signal = mb.pad(x=signal, pad=np.array([0, 0, 0, 0, 0, length - (end - start)], np.int32))
    out = mb.squeeze(x=signal, axes=[1] if batched else [0, 1], name=node.name)
    context.add(out, node.name)


def _one_d_fft(op: str) -> Any:
    def translate(context: Any, node: Any) -> object:
        """``torch.fft.{fft,ifft,rfft,irfft}(x, n=None, dim=-1, norm=None)``: torch.export leaves the defaults out,
        and coremltools' translation expects all four inputs; MIL's complex op with PyTorch's defaults."""
        from coremltools.converters.mil.mil import Builder as mb

        inputs = frontend()._get_inputs(context, node, min_expected=1)
        if len(inputs) >= 4:  # TorchScript records every argument: coremltools' own translation
            getattr(frontend(), op)(context, node)
            return DELEGATED
        kwargs: dict[str, int | str] = {"dim": int(const_value(arg(context, node, inputs, 2, "dim"), -1))}
        n = const_value(arg(context, node, inputs, 1, "n"), None)
        norm = const_value(arg(context, node, inputs, 3, "norm"), None)
        if n is not None:
            kwargs["n"] = int(n)
        if norm is not None:
            kwargs["norm"] = str(norm)
        builder = getattr(mb, "complex_" + op[len("fft_") :])
        context.add(builder(data=inputs[0], **kwargs), node.name)
        return None

    return translate


for _fft in ("fft_fft", "fft_ifft", "fft_rfft", "fft_irfft"):
    rescue(
        _fft,
        f"override: on torch.export coremltools expects all four inputs of torch.fft.{_fft[4:]} (the defaults "
        f"n, dim, norm are left out)",
        override=True,
    )(_one_d_fft(_fft))


_WINDOWS = ("hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window")


def _window(name: str) -> Any:
    def translate(context: Any, node: Any) -> None:
        """``torch.{name}(N, periodic=True, ...)`` of a constant length: PyTorch's own values as a constant (fp32).
        coremltools' ``hann_window`` expects five inputs (torch.export gives one) and the others have none."""
        import torch
        from coremltools.converters.mil.mil import Builder as mb

        inputs = frontend()._get_inputs(context, node, min_expected=1)
        length = const_value(inputs[0], None)
        # TorchScript passes dtype, layout, device, pin_memory last (4 inputs); torch.export only the positionals
        extras = inputs[1 : len(inputs) - 4] if len(inputs) >= 5 else inputs[1:]
        values = [const_value(v, None) for v in extras]
        if length is None or any(v is None for v in values):
            raise NotImplementedError(
                f"{name} with a length or parameter computed at run time (make it constant)"
            )
        extra = [v.item() if isinstance(v, np.ndarray | np.generic) else v for v in values]
        window = getattr(torch, name)(int(length), *extra, dtype=torch.float32).numpy()
        context.add(mb.const(val=window, name=node.name), torch_name=node.name)

    return translate


for _name in _WINDOWS:
    rescue(
        _name,
        "override / missing: a window of constant length made PyTorch's constant (coremltools' hann_window expects "
        "five inputs, which torch.export leaves out; the other windows have no translation)",
        override=True,
        aliases=tuple(
            f"{_name}.{overload}"
            for overload in ("periodic", "periodic_alpha", "periodic_alpha_beta", "beta")
        ),
    )(_window(_name))
