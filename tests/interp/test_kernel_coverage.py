"""Every op of coremltools' MIL registry has a kernel at every opset, taking the inputs that opset defines.

A new input at a later opset (iOS18 gru's ``reset_after`` / ``input_bias``, iOS17 NMS's layout) needs a kernel
registered for it; without one the interpreter refuses such a program at load. This test finds the gap when
coremltools (pinned in pyproject.toml) grows its opsets, instead of a user's package.
"""

from __future__ import annotations

import inspect

# ``const`` ops load as constants; ``conv_quantized`` is a NeuralNetwork-backend op that ML Programs never carry.
NOT_KERNELS = {"const", "_const_symbolic", "conv_quantized"}


def _opset(target) -> int:
    """coremltools' AvailableTarget (iOS13 = 4 ... iOS18 = 9) -> the interpreter's opset number (15 ...)."""
    return max(15, int(getattr(target, "value", target)) + 9)


def test_every_op_and_opset_has_a_kernel_taking_its_inputs():
    import coremltools.converters.mil.mil.ops.defs  # noqa: F401  (registers every op)
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    from devicefit.interp.registry import get_kernel

    gaps = []
    for op_type, versions in SSAOpRegistry.core_ops.items():
        if op_type in NOT_KERNELS:
            continue
        for target, op_class in versions.items():
            opset = _opset(target)
            kernel = get_kernel(op_type, opset)
            if kernel is None:
                gaps.append(f"{op_type} at iOS{opset}: no kernel")
                continue
            params = inspect.signature(kernel.fn).parameters
            takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            # inputs named with a leading underscore are the builder's (cond / while_loop bodies), not the op's
            inputs = {n for n in op_class.input_spec.input_types if not n.startswith("_")}
            unknown = set() if takes_any else inputs - set(params)
            required = {
                n
                for n, p in params.items()
                if n != "ctx" and p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            }
            if unknown or required - inputs:
                gaps.append(
                    f"{op_type} at iOS{opset}: takes no {sorted(unknown)}, needs {sorted(required - inputs)}"
                )
    assert not gaps, "\n".join(gaps)


def test_the_check_finds_a_missing_input():
    """The comparison can fail: the iOS15 gru kernel does not take iOS18's inputs."""
    from coremltools.converters.mil.mil.ops.defs.iOS18.recurrent import gru

    from devicefit.interp.registry import get_kernel

    params = inspect.signature(get_kernel("gru", 17).fn).parameters
    assert {"reset_after", "input_bias"} <= set(gru.input_spec.input_types) - set(params)
