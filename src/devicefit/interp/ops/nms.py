"""non_maximum_suppression: greedy NMS, the semantics Core ML's runtime is tested for.

coremltools' op tests (``mil/ops/tests/iOS14/test_tensor_operation.py``, ``TestNonMaximumSuppression``) hold the
Core ML runtime to a TensorFlow ``tf.image.non_max_suppression`` reference, which fixes what the op spec leaves
open:

* boxes are ``(x_center, y_center, width, height)``; a box's score is its largest class score and its class the
  first class with that score;
* candidates are boxes scoring strictly above ``score_threshold`` (iOS15-16; iOS17 dropped the threshold), taken
  in descending score order, ties by lower box index (TensorFlow's priority queue);
* a candidate is suppressed when its IoU with an already selected box (of the same class, with
  ``per_class_suppression``) is strictly above ``iou_threshold``; IoU is 0 where either box has no area;
* at most ``max_boxes`` are selected; where none survives, the highest-scoring box is returned alone;
* outputs are padded to ``max_boxes``: boxes and scores with zeros, indices with -1.

iOS17 lays boxes and scores out with the box axis last (``[n, 4, B]``, ``[n, K, B]``) and drops the count output.
The selection reads scores into Python, so the compiled path runs this op on the interpreter (it falls back).
"""

from __future__ import annotations

import numpy as np
import torch

from devicefit.interp.registry import bool_, float_, int_, register


def _corners(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, 4) centre boxes -> (lo (B, 2), hi (B, 2), area (B,)), lo/hi ordered even for negative sizes."""
    centre, size = boxes[:, :2], boxes[:, 2:]
    a, b = centre - 0.5 * size, centre + 0.5 * size
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo, hi, np.prod(hi - lo, axis=1)


def _iou(lo: np.ndarray, hi: np.ndarray, area: np.ndarray, i: int, others: np.ndarray) -> np.ndarray:
    """IoU of box ``i`` with each box in ``others`` (0 where either has no area)."""
    inter = np.prod(np.clip(np.minimum(hi[i], hi[others]) - np.maximum(lo[i], lo[others]), 0, None), axis=1)
    union = area[i] + area[others] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    return np.where((area[i] > 0) & (area[others] > 0), iou, 0)


def select_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    score_threshold: float | None,
    max_boxes: int,
    per_class: bool,
) -> list[int]:
    """The indices greedy NMS selects from one batch item's ``boxes`` (B, 4) and ``scores`` (B, K), in order."""
    if len(boxes) == 0 or max_boxes <= 0:
        return []
    best = scores.max(axis=1)
    classes = scores.argmax(axis=1)
    order = np.argsort(-best, kind="stable")
    if score_threshold is not None:
        order = order[best[order] > score_threshold]
    lo, hi, area = _corners(boxes)
    kept: list[int] = []
    for i in order.tolist():
        if len(kept) == max_boxes:
            break
        rivals = np.asarray(kept, dtype=np.int64)
        if per_class:
            rivals = rivals[classes[rivals] == classes[i]]
        if rivals.size == 0 or not (_iou(lo, hi, area, i, rivals) > iou_threshold).any():
            kept.append(i)
    return kept or [int(np.argmax(best))]


def _nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    score_threshold: float | None,
    max_boxes: int,
    per_class: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box-axis-second layout (``[n, B, 4]``, ``[n, B, K]``): the four iOS15 outputs."""
    n, _, k = scores.shape
    out_boxes = torch.zeros((n, max_boxes, 4), dtype=boxes.dtype)
    out_scores = torch.zeros((n, max_boxes, k), dtype=scores.dtype)
    out_idx = torch.full((n, max_boxes), -1, dtype=torch.int32)
    counts = torch.zeros((n,), dtype=torch.int32)
    b_np = boxes.detach().to(torch.float32).numpy()
    s_np = scores.detach().to(torch.float32).numpy()
    for item in range(n):
        kept = select_boxes(b_np[item], s_np[item], iou_threshold, score_threshold, max_boxes, per_class)
        idx = torch.tensor(kept, dtype=torch.int64)
        out_boxes[item, : len(kept)] = boxes[item, idx]
        out_scores[item, : len(kept)] = scores[item, idx]
        out_idx[item, : len(kept)] = idx.to(torch.int32)
        counts[item] = len(kept)
    return out_boxes, out_scores, out_idx, counts


_ATTRS = {
    "iou_threshold": float_,
    "score_threshold": float_,
    "max_boxes": int_,
    "per_class_suppression": bool_,
}


@register("non_maximum_suppression", attrs=_ATTRS)
def non_maximum_suppression(
    boxes, scores, iou_threshold, score_threshold, max_boxes, per_class_suppression=False
):
    return _nms(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class_suppression)


@register("non_maximum_suppression", since="iOS17", attrs=_ATTRS)
def non_maximum_suppression_ios17(boxes, scores, iou_threshold, max_boxes, per_class_suppression=False):
    out_boxes, out_scores, out_idx, _ = _nms(
        boxes.transpose(1, 2), scores.transpose(1, 2), iou_threshold, None, max_boxes, per_class_suppression
    )
    return out_boxes.transpose(1, 2).contiguous(), out_scores.transpose(1, 2).contiguous(), out_idx
