"""Fast 1-D k-means for weight palettization, plugged into coremltools' custom LUT hook.

coremltools' default k-means path runs scikit-learn ``KMeans`` (k-means++ init, ``n_init=1``,
``tol=1e-2``) on every weight element, which is slow for large weights. In one dimension k-means needs far
less: clusters are intervals of the sorted values, so an iteration is a ``searchsorted`` against the
midpoints between centroids plus two weighted ``bincount`` s. We also run the iterations on a histogram:
weights are stored as fp16 anyway, so the values are binned by their fp16 bit pattern (at most 65,536
distinct values, an O(n) ``bincount``), Lloyd iterations run on the weighted distinct values, and only the
final assignment and centroid means touch all n elements (O(n log k)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_ITERATIONS = 100


def _histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct fp16-rounded values (sorted ascending) and how often each occurs."""
    codes = values.astype(np.float16).view(np.uint16)
    counts = np.bincount(codes, minlength=1 << 16)
    present = np.nonzero(counts)[0].astype(np.uint16)
    distinct = present.view(np.float16).astype(np.float64)
    weights = counts[present].astype(np.float64)
    finite = np.isfinite(distinct)
    distinct, weights = distinct[finite], weights[finite]
    order = np.argsort(distinct, kind="stable")
    distinct, weights = distinct[order], weights[order]
    # +0.0 and -0.0 are distinct bit patterns but one value: merge them so centroids stay unique.
    keep = np.concatenate(([True], np.diff(distinct) != 0))
    group = np.cumsum(keep) - 1
    return distinct[keep], np.bincount(group, weights=weights)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    targets = (np.arange(k) + 0.5) / k * cdf[-1]
    return values[np.minimum(np.searchsorted(cdf, targets), len(values) - 1)]


def _lloyd(values: np.ndarray, weights: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    k = len(centroids)
    assign = None
    for _ in range(MAX_ITERATIONS):
        centroids = np.sort(centroids)
        new_assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        mass = np.bincount(assign, weights=weights, minlength=k)
        sums = np.bincount(assign, weights=weights * values, minlength=k)
        empty = mass == 0
        centroids = np.where(empty, centroids, sums / np.where(empty, 1, mass))
        if empty.any():
            # Re-seed an empty cluster at the value farthest from its centroid (largest error).
            err = weights * (values - centroids[assign]) ** 2
            for j in np.nonzero(empty)[0]:
                worst = int(np.argmax(err))
                centroids[j] = values[worst]
                err[worst] = 0.0
    return np.sort(centroids)


def _sse(values: np.ndarray, weights: np.ndarray, centroids: np.ndarray) -> float:
    assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values)
    return float(np.sum(weights * (values - centroids[assign]) ** 2))


def _kmeans_pp(values: np.ndarray, weights: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Weighted k-means++ seeding on the distinct values (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    chosen = [values[rng.choice(len(values), p=weights / weights.sum())]]
    dist = (values - chosen[0]) ** 2
    for _ in range(1, k):
        p = weights * dist
        total = p.sum()
        if total <= 0:
            break
        chosen.append(values[rng.choice(len(values), p=p / total)])
        dist = np.minimum(dist, (values - chosen[-1]) ** 2)
    while len(chosen) < k:
        chosen.append(chosen[-1])
    return np.array(chosen, dtype=np.float64)


def kmeans_1d(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``values`` into ``k`` centroids.

    Args:
        values: any-shaped float array (flattened).
        k: number of centroids (the lookup-table length).

    Returns:
        ``(lut, indices)``: ``lut`` float64 of length ``k`` (sorted), ``indices`` uint8/uint16 per element.
    """
    flat = np.asarray(values).reshape(-1)
    index_dtype = np.uint8 if k <= 256 else np.uint16
    distinct, weights = _histogram(flat)
    if len(distinct) <= k:
        exact = np.unique(flat.astype(np.float64))
        if len(exact) <= k:
            lut = np.concatenate([exact, np.full(k - len(exact), exact[-1] if len(exact) else 0.0)])
            return lut, np.searchsorted(exact, flat.astype(np.float64)).astype(index_dtype)
    # Two starts, keep the lower error: quantiles are good for bell-shaped weights, k-means++ for heavy
    # tails (quantiles leave outliers to few centroids and Lloyd rarely moves centroids across them).
    starts = (_weighted_quantiles(distinct, weights, k), _kmeans_pp(distinct, weights, k))
    centroids = min((_lloyd(distinct, weights, c) for c in starts), key=lambda c: _sse(distinct, weights, c))
    if flat.dtype == np.float16:
        # fp16 weights: every value is one of the 65,536 bit patterns, so assignment is a table gather
        # (O(n)) and the histogram means are exact.
        table = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
        code_cluster = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, table)
        codes = flat.view(np.uint16)
        cluster_of_distinct = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, distinct)
        mass = np.bincount(cluster_of_distinct, weights=weights, minlength=k)
        sums = np.bincount(cluster_of_distinct, weights=weights * distinct, minlength=k)
        lut = np.where(mass > 0, sums / np.maximum(mass, 1), centroids)
        return lut, code_cluster.astype(index_dtype)[codes]
    x = flat.astype(np.float64)
    indices = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, x)
    # Final centroids are exact means of the full-precision members (the histogram rounded to fp16).
    mass = np.bincount(indices, minlength=k)
    sums = np.bincount(indices, weights=x, minlength=k)
    lut = np.where(mass > 0, sums / np.maximum(mass, 1), centroids)
    return lut, indices.astype(index_dtype)


def lut_function(nbits: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A ``lut_function`` for ``OpPalettizerConfig(mode="custom")`` doing ``nbits`` fast k-means.

    coremltools calls it once per weight (or per channel group) and expects ``(lut, indices)`` with the
    lut in the weight's dtype and flat uint8 indices.
    """

    def fast_kmeans_lut(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lut, indices = kmeans_1d(weight, 1 << nbits)
        return lut.astype(weight.dtype), indices.astype(np.uint8)

    fast_kmeans_lut.__name__ = f"fast_kmeans_{nbits}bit"
    return fast_kmeans_lut


def reconstruction_error(weight: np.ndarray, lut: np.ndarray, indices: np.ndarray) -> float:
    """Relative squared error ``||w - lut[idx]||^2 / ||w||^2`` of a palettized weight."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    approx = np.asarray(lut, dtype=np.float64).reshape(-1)[np.asarray(indices).reshape(-1)]
    return float(np.sum((w - approx) ** 2) / max(float(np.sum(w**2)), 1e-300))
