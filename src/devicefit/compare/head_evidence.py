"""Evidence that a linear / conv head makes an embedding, not class scores (read by :mod:`.class_axis`).

A SimCLR projection's 128 units or a retrieval model's 256-d embedding leave a plain ``nn.Linear`` just as a
classifier's logits do; the op alone cannot tell them apart. What can, for any model (docs/metrics.md):

* an L2 normalisation after it (``F.normalize``, CLIP's ``z / z.norm(dim=-1, keepdim=True)``);
* the name of the PyTorch module it belongs to, from the package's provenance (``projection_head``,
  ``visual_projection`` vs ``classifier``, ``lm_head``);
* its result also feeding another linear / conv layer (a hidden state returned beside the logits it feeds).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# Reductions that measure a vector's length: ``x / ||x||`` (F.normalize, CLIP's ``z / z.norm()``) makes an
# embedding, whatever the layer before it. Not reduce_sum alone: ``exp(x) / sum(exp(x))`` is a softmax.
_NORM_REDUCTIONS = frozenset({"reduce_l2_norm", "reduce_sum_square"})
# Ops between such a reduction and the division: a clamp away from 0, a broadcast, the root, a reciprocal.
_NORM_PLUMBING = frozenset(
    {
        "maximum", "clip", "add", "tile", "expand_dims", "reshape", "cast", "identity", "sqrt", "rsqrt", "inverse",
        "real_div", "mul",
    }
)  # fmt: skip
# Layers that take a hidden state further: a head output one of them also reads is a hidden state, not scores
# (a returned ``hidden`` the classifier reads). NOTE: not a norm or an activation: a model may return raw
# scores beside their LayerNorm'd or soft-capped form.
_HIDDEN_CONSUMERS = frozenset({"conv", "conv_transpose", "linear", "matmul"})
# The PyTorch module a linear head belongs to (its provenance), innermost named part first: scores
# (``lm_head``, ``classifier``, GPT-NeoX's ``embed_out``, Whisper's ``proj_out``), then features
# (``projection_head``, CLIP's ``visual_projection``, a VAE's ``encoder``), then a generic head (``head``, ``fc``).
_SCORE_MODULE = re.compile(
    r"unembed|embed_out|lm_head|proj_out|output_proj|class|logit|score|vocab|label|2tag|tagger"
)  # Whisper's proj_out, fairseq's output_projection, a BiLSTM tagger's hidden2tag, (Deformable) DETR's class_embed
_FEATURE_MODULE = re.compile(r"proj|embed|bottleneck|neck|feat|latent|encod|pooler|hidden")
_GENERIC_HEAD_MODULE = re.compile(r"head|^fc\d*$|^cls|cls$")


def head_label(step: Any, provenance: Any) -> str:
    """``classifier.1 (Linear), linear_2``: the PyTorch module first when the package records it."""
    origin = provenance.get(step.outputs[0]) if provenance is not None else None
    if origin is None or not origin.module_path:
        return step.outputs[0]
    kind = f" ({origin.module_type})" if origin.module_type else ""
    return f"{origin.module_path}{kind}, {step.outputs[0]}"


def module_says(module_path: str) -> bool | None:
    """True: the module's name says class scores; False: features; None: it says neither."""
    for part in reversed(module_path.lower().split(".")):
        if _SCORE_MODULE.search(part):
            return True
        if _FEATURE_MODULE.search(part):
            return False
        if _GENERIC_HEAD_MODULE.search(part):
            return True
    return None


def hidden_head(step: Any, path: list[Any], consumers: dict[str, list[Any]], provenance: Any) -> str | None:
    """Why the linear / conv head ``step`` makes features rather than scores (None: nothing says so)."""
    if step.op_type not in _HIDDEN_CONSUMERS:
        return None
    origin = provenance.get(step.outputs[0]) if provenance is not None else None
    if origin is not None and origin.module_path and module_says(origin.module_path) is False:
        return f"{step.op_type} head {head_label(step, provenance)} is named as a projection / embedding: features"
    on_path = {id(s) for s in path}
    further = [
        c
        for c in consumers.get(step.outputs[0], [])
        if id(c) not in on_path and c.op_type in _HIDDEN_CONSUMERS
    ]
    if further:
        return (
            f"{step.op_type} head {head_label(step, provenance)} also feeds {further[0].op_type} "
            f"({further[0].outputs[0]}): a hidden state, not class scores"
        )
    return None


def divides_by_norm(step: Any, producer: dict[str, Any]) -> bool:
    """Whether ``step`` (a real_div or mul) scales its input by a function of the input's vector length."""
    for param in ("y", "x") if step.op_type == "mul" else ("y",):
        name = step.ctx.input_names.get(param)
        for _ in range(8):
            source = producer.get(name) if isinstance(name, str) else None
            if source is None:
                break
            if source.op_type in _NORM_REDUCTIONS:
                return True
            if source.op_type in ("reduce_sum", "reduce_mean"):  # sum(x * x): a squared length
                inner = producer.get(source.ctx.input_names.get("x"))
                return inner is not None and _is_square(inner)
            if source.op_type not in _NORM_PLUMBING:
                break
            name = next((source.ctx.input_names[p] for p in ("x", "y") if p not in source.consts
                         and isinstance(source.ctx.input_names.get(p), str)), None)  # fmt: skip
    return False


def _is_square(step: Any) -> bool:
    names = step.ctx.input_names
    if step.op_type == "mul":
        return isinstance(names.get("x"), str) and names.get("x") == names.get("y")
    return step.op_type == "square" or (
        step.op_type == "pow" and float(np.ravel(step.consts.get("y", 0))[0]) == 2.0
    )
