"""``F.grid_sample(mode="nearest")`` on a grid known at conversion time, as one gather of PyTorch's picks
(``mode="bicubic"``, any grid: ``sampling_bicubic.py``).

coremltools 9.0 translates ``affine_grid`` + ``grid_sample`` to MIL ``affine``, which has bilinear sampling
only, and its torch.export path reads the integer mode arguments as graph values ("Torch var 1 not found").
When the grid is a constant (a constant ``theta`` through ``affine_grid``, or a constant grid) the source
pixel of every output is fixed, so devicefit asks PyTorch's own kernel which pixel that is (sampling an image
whose values are the pixel numbers) and emits one gather: exact whatever the runtime's rounding, fp16 too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue

# aten::grid_sampler's integer arguments (aten/src/ATen/native/GridSampler.h)
_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}
_PADDING = {0: "zeros", 1: "border", 2: "reflection"}


@rescue(
    "grid_sampler",
    "coremltools 9.0 refuses mode='nearest' ('sampling_mode' not supported; torch.export: Torch var not found) "
    "and mode='bicubic'",
    override=True,
)
def grid_sampler(context: Any, node: Any) -> object:
    """``grid_sampler(x, grid, mode, padding_mode, align_corners)`` for ``mode="nearest"`` and a constant grid.

    A grid tensor computed at run time goes to coremltools (MIL ``resample``, which has a nearest mode);
    nearest through ``affine_grid`` with a run-time theta is refused (MIL ``affine`` is bilinear only, and an
    arithmetic rebuild would not round ties as PyTorch does). Other modes go to coremltools' own translation,
    except bilinear after ``affine_grid`` on torch.export, which coremltools fails to read, and bilinear after
    ``affine_grid`` with border / reflection padding, which coremltools' MIL ``affine`` lacks (MIL ``resample`` of
    the grid instead).
    """
    mode = _MODES.get(int(_literal(context, node.inputs[2])))
    padding = _PADDING[int(_literal(context, node.inputs[3]))]
    align_corners = bool(_literal(context, node.inputs[4]))
    if mode == "bicubic":
        _bicubic(context, node, padding, align_corners)
        return None
    theta_key = f"{node.inputs[1]}_theta"
    if mode == "bilinear" and theta_key in context:
        affine_align = bool(context[f"{node.inputs[1]}_align_corners"].val)
        if padding != "zeros" or affine_align != align_corners:
            _affine_resample(context, node, padding, align_corners)
            return None
        if _literal_arguments(node):
            _affine_bilinear(context, node, padding, align_corners)
            return None
    grid_is_tensor = isinstance(node.inputs[1], str) and node.inputs[1] in context
    if mode != "nearest" or (grid_is_tensor and context[node.inputs[1]].val is None):
        # a run-time grid tensor: coremltools' MIL resample, which has a nearest mode
        frontend().grid_sampler(context, node)
        return DELEGATED
    x = context[node.inputs[0]]
    grid = _constant_grid(context, node.inputs[1])
    if grid is None:
        raise NotImplementedError(
            "grid_sample(mode='nearest') after affine_grid with a theta computed at run time has no exact Core ML "
            "translation: use mode='bilinear', or make theta a constant (a buffer) of the model"
        )
    if x.rank != 4 or not all(isinstance(d, int | np.integer) for d in x.shape):
        raise NotImplementedError("grid_sample(mode='nearest') needs a rank-4 input of static shape")
    _gather_picks(context, node, x, grid, padding, align_corners)
    return None


def _bicubic(context: Any, node: Any, padding: str, align_corners: bool) -> None:
    """Bicubic sampling (coremltools has none) from the grid as a MIL var: a grid tensor, or ``affine_grid``'s."""
    from coremltools.converters.mil.mil import Builder as mb

    from devicefit.convert.rescue.sampling_bicubic import affine_grid_var, grid_sample_bicubic

    name = node.inputs[1]
    grid = _constant_grid(context, name)
    if grid is not None:
        grid_var = mb.const(val=grid.astype(np.float32))
    elif isinstance(name, str) and f"{name}_theta" in context:  # affine_grid with a run-time theta
        size = [int(d) for d in np.ravel(context[f"{name}_size"].val)]
        aligned = bool(context[f"{name}_align_corners"].val)
        grid_var = affine_grid_var(_var_named(context, context[f"{name}_theta"].val), size, aligned)
    else:
        grid_var = context[name]
    grid_sample_bicubic(context, node, context[node.inputs[0]], grid_var, padding, align_corners)


def _var_named(context: Any, mil_name: str) -> Any:
    """The var ``affine_grid_generator`` recorded by its MIL name (a graph input's differs from its torch name)."""
    if mil_name in context:
        return context[mil_name]
    for scope in reversed(context._current_graph):
        for var in scope.values():
            if getattr(var, "name", None) == mil_name:
                return var
    raise ValueError(f"grid_sample: affine_grid's theta {mil_name!r} is not in the graph")


def _literal_arguments(node: Any) -> bool:
    """Whether mode / padding / align_corners arrive as Python literals (torch.export), not named values."""
    return not any(isinstance(name, str) for name in node.inputs[2:5])


def _affine_bilinear(context: Any, node: Any, padding: str, align_corners: bool) -> None:
    """``affine_grid`` + bilinear ``grid_sample`` as MIL ``affine``: coremltools' construction, literals read.

    coremltools' own translation does the same but looks the literal arguments up as graph values.
    """
    from coremltools.converters.mil.mil import Builder as mb

    name = node.inputs[1]
    theta = context[f"{name}_theta"]
    size = [int(d) for d in np.ravel(context[f"{name}_size"].val)]
    if padding != "zeros" or bool(context[f"{name}_align_corners"].val) != align_corners:
        raise NotImplementedError(
            "bilinear grid_sample after affine_grid converts (MIL affine) only with padding_mode='zeros' and the "
            "same align_corners in both calls"
        )
    if isinstance(theta.val, str):  # a run-time theta is kept by its name
        matrix = mb.reshape(x=context[theta.val], shape=[-1, 6])
    else:
        matrix = np.reshape(theta.val, (-1, 6)).astype(np.float32)
    out = mb.affine(
        x=context[node.inputs[0]],
        transform_matrix=matrix,
        output_height=size[2],
        output_width=size[3],
        sampling_mode="bilinear",
        padding_mode="constant",
        padding_value=0.0,
        coordinates_mode="normalized_minus_one_to_one",
        align_corners=align_corners,
        name=node.name,
    )
    context.add(out, torch_name=node.name)


def _affine_resample(context: Any, node: Any, padding: str, align_corners: bool) -> None:
    """``affine_grid`` + bilinear ``grid_sample`` with border / reflection padding (or differing align_corners):
    the grid built from ``theta`` (``affine_grid_var``, constant or run-time theta), then MIL ``resample``, which
    has those padding modes (MIL ``affine``, coremltools' translation, has only zeros)."""
    from coremltools.converters.mil.mil import Builder as mb

    from devicefit.convert.rescue.sampling_bicubic import affine_grid_var

    name = node.inputs[1]
    theta = context[f"{name}_theta"]
    size = [int(d) for d in np.ravel(context[f"{name}_size"].val)]
    aligned = bool(context[f"{name}_align_corners"].val)
    if isinstance(theta.val, str):  # a run-time theta is kept by its name
        theta_var = _var_named(context, theta.val)
    else:
        theta_var = mb.const(val=np.asarray(theta.val, dtype=np.float32))
    # NOTE: PyTorch's reflection without align_corners reflects about the pixels' outer edges: MIL's "symmetric"
    mil_padding = {"zeros": "constant", "border": "border", "reflection": "reflection"}[padding]
    if mil_padding == "reflection" and not align_corners:
        mil_padding = "symmetric"
    out = mb.resample(
        x=context[node.inputs[0]],
        coordinates=affine_grid_var(theta_var, size, aligned),
        sampling_mode="bilinear",
        padding_mode=mil_padding,
        padding_value=0.0,
        coordinates_mode="normalized_minus_one_to_one",
        align_corners=align_corners,
        name=node.name,
    )
    context.add(out, torch_name=node.name)


def _literal(context: Any, name: Any) -> Any:
    """An argument's value: a named constant (TorchScript) or a Python literal (torch.export)."""
    if isinstance(name, str) and name in context:
        return context[name].val
    return name


def _constant_grid(context: Any, name: Any) -> np.ndarray | None:
    """The (N, H_out, W_out, 2) float32 grid when it is known at conversion time, else None."""
    import torch
    import torch.nn.functional as F

    theta_key = f"{name}_theta"  # coremltools' affine_grid_generator leaves its arguments under these names
    if isinstance(name, str) and theta_key in context:
        theta = context[theta_key].val
        if isinstance(theta, str) or theta is None:  # a run-time theta is kept by its name
            return None
        size = [int(d) for d in np.ravel(context[f"{name}_size"].val)]
        aligned = bool(context[f"{name}_align_corners"].val)
        theta_t = torch.as_tensor(np.asarray(theta, dtype=np.float32))
        return F.affine_grid(theta_t, size, align_corners=aligned).numpy()
    if isinstance(name, str) and name in context and context[name].val is not None:
        return np.asarray(context[name].val, dtype=np.float32)
    return None


def _gather_picks(
    context: Any, node: Any, x: Any, grid: np.ndarray, padding: str, align_corners: bool
) -> None:
    """Gather PyTorch's nearest pick for every output pixel from ``x`` viewed as (N*H*W, C) rows."""
    import torch
    import torch.nn.functional as F
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    batch, channels, height, width = (int(d) for d in x.shape)
    if grid.shape[0] != batch or grid.ndim != 4 or grid.shape[-1] != 2:
        raise ValueError(f"grid_sample: grid of shape {grid.shape} does not fit an input of shape {x.shape}")
    if batch * height * width >= 2**24:
        raise NotImplementedError("grid_sample(mode='nearest') on more than 2**24 input pixels")
    # Pixel numbers 1.. (0 marks a zero-padded sample), exact in float32 below 2**24. float32 as the model
    # computes, so a coordinate that lands on a rounding tie picks the pixel PyTorch picks.
    numbers = torch.arange(1, batch * height * width + 1, dtype=torch.float32).reshape(
        batch, 1, height, width
    )
    sampled = F.grid_sample(
        numbers, torch.from_numpy(grid), mode="nearest", padding_mode=padding, align_corners=align_corners
    )
    picked = sampled[:, 0].round().to(torch.int64).numpy()  # (N, H_out, W_out)
    rows = mb.reshape(x=mb.transpose(x=x, perm=[0, 2, 3, 1]), shape=[batch * height * width, channels])
    taken = mb.gather(x=rows, indices=np.maximum(picked - 1, 0).astype(np.int32), axis=0)  # (N, Ho, Wo, C)
    result = mb.transpose(x=taken, perm=[0, 3, 1, 2])
    if (picked == 0).any():
        inside = (picked > 0)[:, None]  # (N, 1, Ho, Wo)
        zero = np.zeros((), dtype=nptype_from_builtin(x.dtype))
        result = select(cond=inside, a=result, b=zero)
    context.add(mb.identity(x=result, name=node.name), torch_name=node.name)
