"""PyTorch's alias names (``torch.multiply``, ``torch.greater``...), which coremltools 9.0 does not know.

TorchScript tracing keeps the name the code called (HF ConvBERT calls ``torch.multiply``); each alias has the
schema of the op it names, so coremltools' own translation of that op is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue

# alias (as coremltools sanitizes the kind) -> the op it names, in coremltools' registry
ALIASES = {
    "multiply": "mul",
    "divide": "div",
    "subtract": "sub",
    "greater": "gt",
    "greater_equal": "ge",
    "less": "lt",
    "less_equal": "le",
    "not_equal": "ne",
    "absolute": "abs",
    "negative": "neg",
    "arccos": "acos",
    "arcsin": "asin",
    "arctan": "atan",
    "swapaxes": "transpose",
    "swapdims": "transpose",
    "concatenate": "cat",
    "special_expit": "sigmoid",
    "special_erf": "erf",
    # torch.special's names for ops coremltools (or devicefit) translates under the plain name (probed: refused)
    "special_logsumexp": "logsumexp",
    "special_softmax": "softmax",
    "special_log_softmax": "log_softmax",
    "special_expm1": "expm1",
    "special_exp2": "exp2",
    "special_log1p": "log1p",
    "special_round": "round",
    "special_sinc": "sinc",
    "special_multigammaln": "mvlgamma",
    "special_erfinv": "erfinv",
    "special_xlogy": "xlogy",
    "special_logit": "logit",
    "ger": "outer",
}


def _delegate(target: str) -> Callable[[Any, Any], None]:
    def translate(context: Any, node: Any) -> None:
        from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

        fn = _TORCH_OPS_REGISTRY.get_func(target)
        if fn is None:  # NOTE: only if a coremltools version drops the op the alias names
            raise NotImplementedError(
                f"coremltools has no translation of {target!r}, which {node.kind!r} names"
            )
        # NOTE: some of coremltools' translations branch on node.kind (its shared reduction translation asserts
        # the kind is "logsumexp"): the alias is presented under the name it stands for while it translates
        kind = node.kind
        node.kind = target
        try:
            fn(context, node)
        finally:
            node.kind = kind

    translate.__name__ = f"alias_of_{target}"
    return translate


for _alias, _target in ALIASES.items():
    rescue(_alias, f"coremltools 9.0 does not know PyTorch's alias {_alias!r} of {_target!r}")(
        _delegate(_target)
    )

__all__ = ["ALIASES", "frontend"]
