"""Modified Bessel functions ``i0``, ``special.i0e``, ``special.i1``, ``special.i1e`` (coremltools 9.0: none).

PyTorch computes them with Cephes' Chebyshev expansions (``ATen/native/Math.h``: ``calc_i0`` ...), one on
``[0, 8]`` in ``x / 2 - 2`` and one above 8 in ``32 / x - 2``; the same coefficients (PyTorch's float arrays for
``i1`` / ``i1e``, which are shorter) and the same Clenshaw recurrence (``chbevl``) are built here, both branches
evaluated on clamped arguments and the right one selected. ``exp(|x|)`` is one factor, as in PyTorch, so ``i0`` /
``i1`` are ``inf`` from ``|x| = 88.7`` (fp32) as PyTorch's are, and in fp16 from ``|x| = 11.1`` (where ``exp``
overflows; ``i0`` itself would overflow fp16 at 13.2).
"""

from __future__ import annotations

from typing import Any

from devicefit.convert.rescue._mil import frontend, select
from devicefit.convert.rescue._registry import rescue

# Cephes / PyTorch: exp(-x) I0(x) on [0, 8], exp(-x) sqrt(x) I0(x) above 8
_I0_A = (
    -4.41534164647933937950e-18, 3.33079451882223809783e-17, -2.43127984654795469359e-16,
    1.71539128555513303061e-15, -1.16853328779934516808e-14, 7.67618549860493561688e-14,
    -4.85644678311192946090e-13, 2.95505266312963983461e-12, -1.72682629144155570723e-11,
    9.67580903537323691224e-11, -5.18979560163526290666e-10, 2.65982372468238665035e-9,
    -1.30002500998624804212e-8, 6.04699502254191894932e-8, -2.67079385394061173391e-7,
    1.11738753912010371815e-6, -4.41673835845875056359e-6, 1.64484480707288970893e-5,
    -5.75419501008210370398e-5, 1.88502885095841655729e-4, -5.76375574538582365885e-4,
    1.63947561694133579842e-3, -4.32430999505057594430e-3, 1.05464603945949983183e-2,
    -2.37374148058994688156e-2, 4.93052842396707084878e-2, -9.49010970480476444210e-2,
    1.71620901522208775349e-1, -3.04682672343198398683e-1, 6.76795274409476084995e-1,
)  # fmt: skip
_I0_B = (
    -7.23318048787475395456e-18, -4.83050448594418207126e-18, 4.46562142029675999901e-17,
    3.46122286769746109310e-17, -2.82762398051658348494e-16, -3.42548561967721913462e-16,
    1.77256013305652638360e-15, 3.81168066935262242075e-15, -9.55484669882830764870e-15,
    -4.15056934728722208663e-14, 1.54008621752140982691e-14, 3.85277838274214270114e-13,
    7.18012445138366623367e-13, -1.79417853150680611778e-12, -1.32158118404477131188e-11,
    -3.14991652796324136454e-11, 1.18891471078464383424e-11, 4.94060238822496958910e-10,
    3.39623202570838634515e-9, 2.26666899049817806459e-8, 2.04891858946906374183e-7,
    2.89137052083475648297e-6, 6.88975834691682398426e-5, 3.36911647825569408990e-3,
    8.04490411014108831608e-1,
)  # fmt: skip
# PyTorch's float arrays for exp(-x) I1(x) / x on [0, 8] and exp(-x) sqrt(x) I1(x) above 8
_I1_A = (
    9.38153738649577178388e-9, -4.44505912879632808065e-8, 2.00329475355213526229e-7,
    -8.56872026469545474066e-7, 3.47025130813767847674e-6, -1.32731636560394358279e-5,
    4.78156510755005422638e-5, -1.61760815825896745588e-4, 5.12285956168575772895e-4,
    -1.51357245063125314899e-3, 4.15642294431288815669e-3, -1.05640848946261981558e-2,
    2.47264490306265168283e-2, -5.29459812080949914269e-2, 1.02643658689847095384e-1,
    -1.76416518357834055153e-1, 2.52587186443633654823e-1,
)  # fmt: skip
_I1_B = (
    -3.83538038596423702205e-9, -2.63146884688951950684e-8, -2.51223623787020892529e-7,
    -3.88256480887769039346e-6, -1.10588938762623716291e-4, -9.76109749136146840777e-3,
    7.78576235018280120474e-1,
)  # fmt: skip


def _chbevl(mb: Any, x: Any, array: tuple[float, ...]) -> Any:
    """Cephes' ``chbevl``: ``b0 = x b1 - b2 + a[i]``, then ``0.5 (b0 - b2)``, in PyTorch's order."""
    b0: Any = array[0]
    b1: Any = 0.0
    b2: Any = 0.0
    for c in array[1:]:
        b2, b1 = b1, b0
        b0 = mb.add(x=mb.sub(x=mb.mul(x=x, y=b1), y=b2), y=c)
    return mb.mul(x=mb.sub(x=b0, y=b2), y=0.5)


def _branches(mb: Any, a: Any, small_array: tuple, big_array: tuple) -> tuple[Any, Any, Any, Any]:
    """``(chbevl on [0, 8], chbevl above 8 divided by sqrt(x), the clamped x of each)`` for ``a = |x|``."""
    small = mb.minimum(x=a, y=8.0)
    big = mb.maximum(x=a, y=8.0)
    near = _chbevl(mb, mb.sub(x=mb.mul(x=small, y=0.5), y=2.0), small_array)
    far = mb.real_div(x=_chbevl(mb, mb.sub(x=mb.real_div(x=32.0, y=big), y=2.0), big_array), y=mb.sqrt(x=big))
    return near, far, small, big


def _add(context: Any, node: Any, x: Any, value: Any, odd: bool) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    if odd:
        value = select(cond=mb.less(x=x, y=0.0), a=mb.mul(x=value, y=-1.0), b=value)
    out = select(cond=mb.not_equal(x=x, y=x), a=x, b=value, name=node.name)
    context.add(out, torch_name=node.name)


def _input(context: Any, node: Any) -> Any:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    x = frontend()._get_inputs(context, node, min_expected=1)[0]
    return x if types.is_float(x.dtype) else mb.cast(x=x, dtype="fp32")


@rescue(
    "i0", "coremltools 9.0 has no translation (torch.i0: Kaiser windows, von Mises)", aliases=("special_i0",)
)
def i0(context: Any, node: Any) -> None:
    """``exp(|x|) chbevl(|x| / 2 - 2, A)`` up to 8, ``exp(|x|) chbevl(32 / |x| - 2, B) / sqrt(|x|)`` above."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _input(context, node)
    a = mb.abs(x=x)
    near, far, small, _ = _branches(mb, a, _I0_A, _I0_B)
    value = select(
        cond=mb.less_equal(x=a, y=8.0), a=mb.mul(x=mb.exp(x=small), y=near), b=mb.mul(x=mb.exp(x=a), y=far)
    )
    _add(context, node, x, value, odd=False)


@rescue("special_i0e", "coremltools 9.0 has no translation (torch.special.i0e)")
def special_i0e(context: Any, node: Any) -> None:
    """``exp(-|x|) I0(x)``: the two expansions without the exponential."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _input(context, node)
    a = mb.abs(x=x)
    near, far, _, _ = _branches(mb, a, _I0_A, _I0_B)
    _add(context, node, x, select(cond=mb.less_equal(x=a, y=8.0), a=near, b=far), odd=False)


@rescue("special_i1", "coremltools 9.0 has no translation (torch.special.i1)")
def special_i1(context: Any, node: Any) -> None:
    """``exp(|x|) |x| chbevl(A)`` up to 8, ``exp(|x|) chbevl(B) / sqrt(|x|)`` above, the sign of ``x``."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _input(context, node)
    a = mb.abs(x=x)
    near, far, small, _ = _branches(mb, a, _I1_A, _I1_B)
    near = mb.mul(x=mb.mul(x=mb.exp(x=small), y=small), y=near)
    value = select(cond=mb.less_equal(x=a, y=8.0), a=near, b=mb.mul(x=mb.exp(x=a), y=far))
    _add(context, node, x, value, odd=True)


@rescue("special_i1e", "coremltools 9.0 has no translation (torch.special.i1e)")
def special_i1e(context: Any, node: Any) -> None:
    """``exp(-|x|) I1(x)``: ``chbevl(A) |x|`` up to 8, ``chbevl(B) / sqrt(|x|)`` above, the sign of ``x``."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _input(context, node)
    a = mb.abs(x=x)
    near, far, small, _ = _branches(mb, a, _I1_A, _I1_B)
    value = select(cond=mb.less_equal(x=a, y=8.0), a=mb.mul(x=near, y=small), b=far)
    _add(context, node, x, value, odd=True)
