"""non_maximum_suppression against an independent reference of what Core ML's runtime is tested for.

The reference follows coremltools' own op test (``mil/ops/tests/iOS14/test_tensor_operation.py``,
``TestNonMaximumSuppression._ref_non_maximum_suppression``): boxes turned into TensorFlow's corner form, TensorFlow's
greedy ``non_max_suppression`` (scores strictly above the threshold, ties by lower index, suppression at IoU strictly
above the threshold), per-class suppression as separate runs per class merged in score order, the best box alone
where none survives, padding with zeros and index -1. Its smoke case's values are the runtime's.
"""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import interp
from tests.interp import milprog


def _tf_iou(a: np.ndarray, b: np.ndarray) -> float:
    """tensorflow/core/kernels/image/non_max_suppression_op.cc IOU on (y1, x1, y2, x2) corners."""
    ymin_a, xmin_a, ymax_a, xmax_a = min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3])
    ymin_b, xmin_b, ymax_b, xmax_b = min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])
    area_a = (ymax_a - ymin_a) * (xmax_a - xmin_a)
    area_b = (ymax_b - ymin_b) * (xmax_b - xmin_b)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    ih = max(min(ymax_a, ymax_b) - max(ymin_a, ymin_b), 0.0)
    iw = max(min(xmax_a, xmax_b) - max(xmin_a, xmin_b), 0.0)
    inter = ih * iw
    return inter / (area_a + area_b - inter)


def _tf_nms(
    corners: np.ndarray, score: np.ndarray, max_out: int, iou_thr: float, score_thr: float
) -> list[int]:
    candidates = sorted((i for i in range(len(score)) if score[i] > score_thr), key=lambda i: (-score[i], i))
    selected: list[int] = []
    for i in candidates:
        if len(selected) == max_out:
            break
        if all(_tf_iou(corners[i], corners[j]) <= iou_thr for j in selected):
            selected.append(i)
    return selected


def reference(boxes, scores, iou_thr, score_thr, max_boxes, per_class):
    """(n, B, 4) centre boxes, (n, B, K) scores -> the four iOS15 outputs."""
    n, _, k = scores.shape
    cx, cy, w, h = np.split(boxes.astype(np.float32), 4, axis=-1)
    corners = np.concatenate((cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w), axis=-1)
    out = (np.zeros((n, max_boxes, 4)), np.zeros((n, max_boxes, k)), -np.ones((n, max_boxes)), np.zeros(n))
    thr = -np.inf if score_thr is None else score_thr
    for b in range(n):
        score = scores[b].max(axis=-1)
        if not per_class:
            ids = _tf_nms(corners[b], score, max_boxes, iou_thr, thr)
        else:
            cls = scores[b].argmax(axis=-1)
            ids = []
            for c in np.unique(cls):
                members = np.flatnonzero(cls == c)
                ids += [
                    int(members[i])
                    for i in _tf_nms(corners[b][members], score[members], max_boxes, iou_thr, thr)
                ]
            ids = sorted(ids, key=lambda i: (-score[i], i))
        ids = (ids or [int(np.argmax(score))])[:max_boxes]
        out[0][b, : len(ids)] = boxes[b, ids]
        out[1][b, : len(ids)] = scores[b, ids]
        out[2][b, : len(ids)] = ids
        out[3][b] = len(ids)
    return out


def _case(seed: int, n: int, nb: int, k: int):
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 100, (n, nb, 4)).astype(np.float32)
    # distinct scores (coremltools' stress test draws them without duplicates)
    scores = rng.permutation(n * nb * k).reshape(n, nb, k).astype(np.float32) / (n * nb * k) * 200 - 100
    return boxes, scores


def _thresholds(boxes: np.ndarray, scores: np.ndarray, iou_pct: int, score_pct: int) -> tuple[float, float]:
    cx, cy, w, h = np.split(boxes[0], 4, axis=-1)
    lo, hi = np.hstack([cx - w / 2, cy - h / 2]), np.hstack([cx + w / 2, cy + h / 2])
    inter = np.prod(
        np.clip(np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]), 0, None), -1
    )
    area = (w * h)[:, 0]
    iou = inter / (area[:, None] + area[None] - inter)
    iou = iou[~np.eye(len(iou), dtype=bool)]
    score_thr = {0: scores.min() - 1, 100: scores.max() + 1}.get(
        score_pct, np.percentile(scores, score_pct) + 0.01
    )
    return float(max(np.percentile(iou, iou_pct) + 0.01, 1e-8)), float(score_thr)


def _ios15(iou_thr, score_thr, max_boxes, per_class):
    from coremltools.converters.mil import Builder as mb

    def prog(boxes, scores):
        return mb.non_maximum_suppression(
            boxes=boxes,
            scores=scores,
            iou_threshold=iou_thr,
            score_threshold=score_thr,
            max_boxes=max_boxes,
            per_class_suppression=per_class,
        )

    return prog


def test_the_runtime_smoke_case_of_coremltools():
    boxes = np.array([[[0.0] * 4, [1.0] * 4, [2.0] * 4, [3.0] * 4]], dtype=np.float32)
    scores = np.array([[[-3.5], [9.4], [2.3], [0.7]]], dtype=np.float32)
    got = milprog.run(
        _ios15(0.2, 0.4, 2, True),
        {"boxes": boxes, "scores": scores},
        target="iOS15",
        op="non_maximum_suppression",
    )
    np.testing.assert_array_equal(got[0], [[[1.0] * 4, [2.0] * 4]])
    np.testing.assert_array_equal(got[1], np.array([[[9.4], [2.3]]], np.float32))
    np.testing.assert_array_equal(got[2], [[1, 2]])
    np.testing.assert_array_equal(got[3], [2])
    assert got[2].dtype == np.int32 and got[3].dtype == np.int32


STRESS = [
    pytest.param(iou, sc, nb, k, pc, marks=() if fast else pytest.mark.slow)
    for fast, (iou, sc, nb, k, pc) in [
        (True, (30, 40, (10, 7), 4, True)),
        (True, (80, 0, (30, 37), 1, False)),
        (True, (100, 100, (10, 7), 4, False)),
        (False, (30, 0, (30, 37), 7, True)),
        (False, (80, 40, (100, 64), 7, False)),
        (False, (100, 40, (100, 64), 4, True)),
        (False, (30, 100, (30, 37), 1, True)),
    ]
]


@pytest.mark.parametrize("iou_pct, score_pct, n_boxes, n_score, per_class", STRESS)
def test_the_stress_grid_of_coremltools_ios15(iou_pct, score_pct, n_boxes, n_score, per_class):
    n_in, n_out = n_boxes
    boxes, scores = _case(iou_pct * 7 + score_pct + n_in + n_score, 2, n_in, n_score)
    iou_thr, score_thr = _thresholds(boxes, scores, iou_pct, score_pct)
    got = milprog.run(
        _ios15(iou_thr, score_thr, n_out, per_class), {"boxes": boxes, "scores": scores}, target="iOS16"
    )
    want = reference(boxes, scores, iou_thr, score_thr, n_out, per_class)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w.astype(g.dtype))
    assert (got[3] >= 1).all()  # none surviving the threshold still returns the best box


@pytest.mark.parametrize("per_class", [False, True])
def test_ios17_lays_the_box_axis_last_and_drops_the_count(per_class):
    from coremltools.converters.mil import Builder as mb

    boxes, scores = _case(17, 2, 30, 3)
    iou_thr, _ = _thresholds(boxes, scores, 50, 0)

    def prog(boxes, scores):
        return mb.non_maximum_suppression(
            boxes=boxes, scores=scores, iou_threshold=iou_thr, max_boxes=40, per_class_suppression=per_class
        )

    feeds = {"boxes": boxes.transpose(0, 2, 1).copy(), "scores": scores.transpose(0, 2, 1).copy()}
    got = milprog.run(prog, feeds, target="iOS17", op="non_maximum_suppression")
    want = reference(boxes, scores, iou_thr, None, 40, per_class)
    assert len(got) == 3
    np.testing.assert_array_equal(got[0], want[0].transpose(0, 2, 1).astype(np.float32))
    np.testing.assert_array_equal(got[1], want[1].transpose(0, 2, 1).astype(np.float32))
    np.testing.assert_array_equal(got[2], want[2].astype(np.int32))
    assert (got[2][:, -1] == -1).all()  # 40 > 30 boxes: padded


def test_ties_go_to_the_lower_index_degenerate_boxes_never_suppress_and_the_threshold_is_strict():
    # boxes 0 and 1 identical with equal scores: 0 is taken, 1 suppressed; box 2 has no area: IoU 0 with all
    boxes = np.array([[[5, 5, 2, 2], [5, 5, 2, 2], [5, 5, 0, 3], [20, 20, -2, 2]]], np.float32)
    scores = np.array([[[0.9], [0.9], [0.5], [0.4]]], np.float32)
    got = milprog.run(_ios15(0.5, 0.0, 4, False), {"boxes": boxes, "scores": scores}, target="iOS15")
    np.testing.assert_array_equal(got[2], [[0, 2, 3, -1]])
    np.testing.assert_array_equal(got[3], [3])
    np.testing.assert_array_equal(got[2], reference(boxes, scores, 0.5, 0.0, 4, False)[2])
    # a score equal to the threshold is out (strictly above is in)
    got = milprog.run(_ios15(0.5, 0.4, 4, False), {"boxes": boxes, "scores": scores}, target="iOS15")
    np.testing.assert_array_equal(got[2], [[0, 2, -1, -1]])


def test_an_iou_equal_to_the_threshold_does_not_suppress():
    # IoU exactly 0.5 (intersection 2, union 4): suppressed only above the threshold
    boxes = np.array([[[1, 1, 2, 2], [1, 1, 2, 1], [1, 1, 2, 1.5]]], np.float32)
    scores = np.array([[[0.9], [0.8], [0.7]]], np.float32)
    got = milprog.run(_ios15(0.5, 0.0, 3, False), {"boxes": boxes, "scores": scores}, target="iOS15")
    np.testing.assert_array_equal(got[2], [[0, 1, -1]])  # box 2: IoU 0.75 with box 0
    np.testing.assert_array_equal(got[2], reference(boxes, scores, 0.5, 0.0, 3, False)[2])


def test_the_compiled_path_falls_back_for_nms_and_agrees():
    boxes, scores = _case(3, 1, 12, 2)
    model = milprog.convert(_ios15(0.3, -50.0, 6, True), {"boxes": boxes, "scores": scores}, target="iOS16")
    prog = interp.load(model)
    want = prog.run({"boxes": boxes, "scores": scores})
    fast = interp.compile_program(prog, "fp32")
    got = fast.run({"boxes": boxes, "scores": scores})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert any(f.op_type == "non_maximum_suppression" for f in fast.fallbacks)
