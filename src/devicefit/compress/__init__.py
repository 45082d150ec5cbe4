"""Compression = config objects + verbs over ``coremltools.optimize.coreml``, plus sensitivity and search.

::

    from devicefit import compress
    small = compress.palettize(mlmodel, compress.PalettizeConfig(nbits=4, granularity="per_grouped_channel",
                                                                 group_size=16))
    mixed = compress.apply_plan(mlmodel, {"fc_weight": compress.PalettizeConfig(nbits=8)},
                                default=compress.PalettizeConfig(nbits=4))
    result = compress.search(mlmodel, feeds, compress.SearchOptions(budget="cosine>=0.999"))
    result.save("small.mlpackage")
"""

from __future__ import annotations

from devicefit.compress.budget import Budget, parse_budget
from devicefit.compress.configs import (
    Config,
    Fp16Config,
    JointConfig,
    PalettizeConfig,
    PruneConfig,
    QuantizeConfig,
)
from devicefit.compress.kmeans import kmeans_1d, lut_function
from devicefit.compress.repair import Fp16Repair, repair_fp16
from devicefit.compress.search import Candidate, SearchOptions, SearchResult, search
from devicefit.compress.sensitivity import Sensitivity
from devicefit.compress.verbs import (
    apply_plan,
    compress,
    fp16,
    joint,
    palettize,
    prune,
    quantize,
    save,
)
from devicefit.compress.weights import find_weights, plan_yaml, stored_bytes

__all__ = [
    "Budget",
    "Candidate",
    "Config",
    "Fp16Config",
    "Fp16Repair",
    "JointConfig",
    "PalettizeConfig",
    "PruneConfig",
    "QuantizeConfig",
    "SearchOptions",
    "SearchResult",
    "Sensitivity",
    "apply_plan",
    "compress",
    "find_weights",
    "fp16",
    "joint",
    "kmeans_1d",
    "lut_function",
    "palettize",
    "parse_budget",
    "plan_yaml",
    "prune",
    "quantize",
    "repair_fp16",
    "save",
    "search",
    "stored_bytes",
]
