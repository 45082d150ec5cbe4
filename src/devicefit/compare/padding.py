"""Positions an attention mask marks as padding, left out of output comparisons.

A model with an attention-mask input computes *something* at the positions the mask marks as padding, but
nothing there is defined: in a causal LM a left-padded position attends to no key at all, and PyTorch (a
fully masked softmax row) and Core ML (a finite mask value) fill that row differently. Nobody reads those
outputs (a tokenizer's padding exists only to batch), so comparing them makes a correct conversion look
broken. The comparison therefore keeps, per output, only the positions the mask marks as tokens.

The mask input is found by its role in the model's signature (``attention_mask``, ``input_mask``,
``decoder_attention_mask``...: 1 marks a token; ``padding_mask`` / ``key_padding_mask``: 1 marks padding, as
in ``torch.nn.MultiheadAttention``) and by its values (0/1 only, shape ``(batch, sequence)``). An output's
sequence axis is the first axis after the batch axis whose length equals the mask's sequence length, in every
sample; an output without one (a pooled vector) is compared whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# 1 marks a token (Hugging Face tokenizers' attention_mask, BERT-era input_mask)
TOKEN_MASK_NAME = re.compile(r"(^|_)(attention_mask|input_mask|mask)$", re.IGNORECASE)
# 1 marks padding (torch.nn.MultiheadAttention's key_padding_mask, fairseq's padding_mask)
PAD_MASK_NAME = re.compile(r"(^|_)padding_mask$", re.IGNORECASE)

REASON = (
    "the attention mask marks them as padding: their values are undefined (a left-padded position attends to "
    "nothing) and no app reads them"
)


@dataclass
class Padding:
    """Where the validation data's attention masks mark padding.

    Attributes:
        input: the mask input's name.
        tokens: per sample, a bool ``(batch, sequence)`` array, True where the mask marks a token.
        outputs: output name -> positions excluded from its comparison (filled by :meth:`keeps`).
    """

    input: str
    tokens: list[np.ndarray]
    outputs: dict[str, int] = field(default_factory=dict)

    @property
    def positions(self) -> int:
        """Sequence positions in the data (over every sample and batch row)."""
        return int(sum(t.size for t in self.tokens))

    @property
    def excluded(self) -> int:
        """Positions the mask marks as padding."""
        return int(sum(t.size - int(t.sum()) for t in self.tokens))

    def keeps(self, per_sample: list[dict[str, Any]], record: bool = True) -> dict[str, np.ndarray]:
        """Output name -> a bool array broadcastable to the output stacked over samples (axis 0), True where
        the position is a token; outputs without a sequence axis are absent (compared whole).

        ``record``: note the outputs in :attr:`outputs` (for the report; off for a second naming of the
        same outputs, e.g. the program's names beside PyTorch's).
        """
        found: dict[str, np.ndarray] = {}
        for name in per_sample[0] if per_sample else {}:
            parts = [
                sequence_keep(np.asarray(s[name]), t) for s, t in zip(per_sample, self.tokens, strict=False)
            ]
            if len(parts) != len(self.tokens) or any(p is None for p in parts):
                continue
            if len({p.shape[1:] for p in parts if p is not None}) != 1:
                continue  # the sequence axis moved between samples: no single rule, compare whole
            keep = np.concatenate([p for p in parts if p is not None], axis=0)
            if keep.any() and not keep.all():
                found[name] = keep
                if record:
                    self.outputs[name] = int(keep.size - keep.sum())
        return found

    def keeps_stacked(self, stacked: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """:meth:`keeps` for outputs already stacked over samples (axis 0), not recorded in the report."""
        sizes = [t.shape[0] for t in self.tokens]
        per_sample: list[dict[str, Any]] = [{} for _ in sizes]
        for name, value in stacked.items():
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != sum(sizes):
                continue
            for found, part in zip(per_sample, np.split(array, np.cumsum(sizes)[:-1]), strict=True):
                found[name] = part
        return self.keeps(per_sample, record=False)

    def describe(self) -> str:
        """One line for the report: how many positions were left out of which outputs, and why."""
        names = ", ".join(sorted(self.outputs))
        return (
            f"{self.excluded} of {self.positions} positions have {self.input} marking padding; {names} compared "
            f"at the other {self.positions - self.excluded} only ({REASON})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "positions": self.positions,
            "excluded_positions": self.excluded,
            "outputs": dict(self.outputs),
            "reason": REASON,
        }


def find_padding(feeds: list[dict[str, Any]]) -> Padding | None:
    """The first attention-mask input (by name and 0/1 values) with padding in ``feeds``; None if none."""
    if not feeds:
        return None
    for name in feeds[0]:
        token_mask = not PAD_MASK_NAME.search(name)
        if token_mask and not TOKEN_MASK_NAME.search(name):
            continue
        tokens = []
        for feed in feeds:
            value = np.asarray(feed.get(name))
            if value.ndim != 2 or not np.isin(value, (0, 1)).all():
                break  # not a (batch, sequence) 0/1 mask: an additive float mask, a 4-D mask...
            tokens.append(value.astype(bool) if token_mask else ~value.astype(bool))
        else:
            if not all(t.all() for t in tokens):
                return Padding(name, tokens)
    return None


def sequence_keep(output: np.ndarray, tokens: np.ndarray, every_axis: bool = False) -> np.ndarray | None:
    """``tokens`` laid along ``output``'s sequence axis (batch on axis 0, ones elsewhere), or None.

    ``every_axis``: mark padding along every axis of the sequence's length, not only the first: an
    intermediate value such as attention scores ``(batch, heads, queries, keys)`` is undefined in a padded
    query's row *and* a padded key's column (the mask is added later), while an output's first such axis is
    its sequence and a later one of equal length is more likely its classes.
    """
    batch, length = tokens.shape
    # a float output of rank 2 is (batch, features) far more often than (batch, sequence) of scalars
    min_rank = 3 if output.dtype.kind == "f" else 2
    if output.ndim < min_rank or output.shape[0] != batch:
        return None
    keep: np.ndarray | None = None
    for axis in range(1, output.ndim):
        if output.shape[axis] == length:
            shape = [1] * output.ndim
            shape[0], shape[axis] = batch, length
            along = tokens.reshape(shape)
            keep = along if keep is None else keep & along
            if not every_axis:
                break
    return keep


def kept(
    keep: Mapping[str, np.ndarray] | None, names: tuple[str, str], shape: tuple[int, ...]
) -> np.ndarray | None:
    """The keep array for an output pair (by either name), when it fits the stacked output's ``shape``."""
    for name in names:
        found = (keep or {}).get(name)
        if found is not None and found.ndim == len(shape):
            try:
                return np.broadcast_to(found, shape)
            except ValueError:
                return None
    return None


def select(
    reference: np.ndarray, candidate: np.ndarray, keep: np.ndarray, class_axis: int | None
) -> tuple[np.ndarray, np.ndarray, int | None] | None:
    """Reference and candidate at the kept positions only (None when that leaves nothing or cuts classes).

    With a class axis the result is ``(positions, classes)`` (class axis 1) so top-k still ranks classes;
    without, the kept values flattened.
    """
    if not keep.any():
        return None
    if class_axis is None:
        return reference[keep], candidate[keep], None
    moved = np.moveaxis(keep, class_axis, -1)
    if not (moved == moved[..., :1]).all():
        return None  # the mask runs along the class axis: not a sequence axis after all
    rows = moved[..., 0]
    pick = np.moveaxis(reference, class_axis, -1)[rows], np.moveaxis(candidate, class_axis, -1)[rows]
    return pick[0], pick[1], 1
