"""Extra torch -> MIL op translations ("rescue") for ops coremltools 9.0 lacks or mishandles.

One function per torch op, registered with ``@rescue("op")`` into :data:`RESCUES`, grouped by family in this
package's modules. :func:`rescue_translations` installs the table into coremltools' torch frontend for the
duration of a ``with`` block (a conversion or a scan) and restores coremltools' registry afterwards.

Each translation is tested against PyTorch through devicefit's interpreter in tests/convert/.
"""

from __future__ import annotations

# Importing the family modules fills RESCUES.
from devicefit.convert.rescue import (  # noqa: F401
    activation,
    aliases,
    arith,
    assign,
    attention,
    bessel,
    complex_ops,
    conv_transpose,
    distance,
    einsum,
    elementwise,
    fold,
    gamma,
    gather,
    histogram,
    index_put,
    layout,
    linalg,
    lm_casts,
    lu,
    masks,
    mathfn,
    moments,
    nanreduce,
    norm,
    normal,
    order,
    pad,
    pointwise,
    pool_ceil,
    pooling,
    products,
    recurrent,
    resize,
    resize3d,
    sampling,
    scatter,
    sdpa,
    search,
    shape_rules,
    special,
    sweep3,
    tensor,
    unpool,
    windows,
    writes,
)
from devicefit.convert.rescue._registry import (
    DELEGATED,
    RESCUES,
    Rescue,
    is_rescue,
    recorded_uses,
    rescue,
    rescue_translations,
)

__all__ = ["DELEGATED", "RESCUES", "Rescue", "is_rescue", "recorded_uses", "rescue", "rescue_translations"]
