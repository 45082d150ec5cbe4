"""Compression config objects: what to do to a weight, validated up front, mapped onto coremltools.

Each config is a plain dataclass with ``validate()`` (raises :class:`~devicefit.errors.InputError` with a
one-line message), ``label`` (short name for tables) and ``to_ct()`` (the ``coremltools.optimize.coreml``
op config it stands for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devicefit.errors import InputError

PALETTIZE_BITS = (1, 2, 3, 4, 6, 8)
PALETTIZE_MODES = ("kmeans", "fast_kmeans", "uniform")
PALETTIZE_GRANULARITIES = ("per_tensor", "per_grouped_channel")
QUANTIZE_DTYPES = ("int8", "uint8", "int4", "uint4")
QUANTIZE_GRANULARITIES = ("per_tensor", "per_channel", "per_block")
QUANTIZE_MODES = ("linear_symmetric", "linear")


def _choice(what: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _positive(what: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}; got {value!r}")


@dataclass(frozen=True)
class Fp16Config:
    """Store weights and compute in float16 (Core ML's default precision for ML Programs)."""

    @property
    def label(self) -> str:
        return "fp16"

    def validate(self) -> None:
        """Nothing to check; present so every config has the same interface."""


@dataclass(frozen=True)
class QuantizeConfig:
    """Linear weight quantization (``OpLinearQuantizerConfig``).

    Attributes:
        dtype: ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"`` (4-bit needs an iOS18 model).
        granularity: ``"per_channel"``, ``"per_tensor"`` or ``"per_block"`` (iOS18).
        block_size: input-channel block size for ``per_block``.
        mode: ``"linear_symmetric"`` (no zero point) or ``"linear"``.
        weight_threshold: weights with fewer elements are left as they are.
    """

    dtype: str = "int8"
    granularity: str = "per_channel"
    block_size: int = 32
    mode: str = "linear_symmetric"
    weight_threshold: int = 2048

    @property
    def nbits(self) -> int:
        return 4 if self.dtype.endswith("4") else 8

    @property
    def label(self) -> str:
        block = f"/{self.block_size}" if self.granularity == "per_block" else ""
        return f"{self.dtype} {self.granularity}{block}"

    def validate(self) -> None:
        _choice("quantize dtype", self.dtype, QUANTIZE_DTYPES)
        _choice("quantize granularity", self.granularity, QUANTIZE_GRANULARITIES)
        _choice("quantize mode", self.mode, QUANTIZE_MODES)
        _positive("block_size", self.block_size)
        _positive("weight_threshold", self.weight_threshold, 0)

    def to_ct(self) -> Any:
        import coremltools.optimize.coreml as cto

        self.validate()
        return cto.OpLinearQuantizerConfig(
            mode=self.mode,
            dtype=self.dtype,
            granularity=self.granularity,
            block_size=self.block_size if self.granularity == "per_block" else None,
            weight_threshold=self.weight_threshold,
        )

    def yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "dtype": self.dtype, "granularity": self.granularity}
        if self.granularity == "per_block":
            out["block_size"] = self.block_size
        out["weight_threshold"] = self.weight_threshold
        return out


@dataclass(frozen=True)
class PalettizeConfig:
    """Weight palettization: each weight becomes indices into a lookup table (``OpPalettizerConfig``).

    Attributes:
        nbits: bits per index, one of 1, 2, 3, 4, 6, 8.
        mode: ``"kmeans"`` (coremltools' k-means), ``"fast_kmeans"`` (devicefit's vectorized 1-D k-means
            through coremltools' custom LUT hook; same format, much faster on big weights) or ``"uniform"``.
        granularity: ``"per_tensor"`` or ``"per_grouped_channel"`` (one table per ``group_size`` output
            channels; iOS18).
        group_size: output channels per table for ``per_grouped_channel``.
        per_channel_scale: scale each output channel to [-1, 1] before clustering (iOS18).
        weight_threshold: weights with fewer elements are left as they are.
    """

    nbits: int = 4
    mode: str = "fast_kmeans"
    granularity: str = "per_tensor"
    group_size: int = 16
    per_channel_scale: bool = False
    weight_threshold: int = 2048

    @property
    def label(self) -> str:
        group = f"/g{self.group_size}" if self.granularity == "per_grouped_channel" else ""
        scale = "+scale" if self.per_channel_scale else ""
        return f"pal{self.nbits} {self.mode}{group}{scale}"

    def validate(self) -> None:
        _choice("palettize nbits", self.nbits, PALETTIZE_BITS)
        _choice("palettize mode", self.mode, PALETTIZE_MODES)
        _choice("palettize granularity", self.granularity, PALETTIZE_GRANULARITIES)
        _positive("group_size", self.group_size)
        _positive("weight_threshold", self.weight_threshold, 0)
        if not isinstance(self.per_channel_scale, bool):
            raise InputError(f"per_channel_scale must be true or false; got {self.per_channel_scale!r}")

    def to_ct(self) -> Any:
        import coremltools.optimize.coreml as cto

        from devicefit.compress.kmeans import lut_function

        self.validate()
        extra: dict[str, Any] = {}
        if self.mode == "fast_kmeans":
            extra = {"mode": "custom", "lut_function": lut_function(self.nbits)}
        else:
            extra = {"mode": self.mode, "nbits": self.nbits}
        return cto.OpPalettizerConfig(
            granularity=self.granularity,
            group_size=self.group_size,
            enable_per_channel_scale=self.per_channel_scale,
            weight_threshold=self.weight_threshold,
            **extra,
        )

    def yaml_dict(self) -> dict[str, Any]:
        # A custom LUT function cannot be written to YAML; coremltools' k-means makes the same format.
        out: dict[str, Any] = {
            "mode": "kmeans" if self.mode == "fast_kmeans" else self.mode,
            "nbits": self.nbits,
            "granularity": self.granularity,
        }
        if self.granularity == "per_grouped_channel":
            out["group_size"] = self.group_size
        if self.per_channel_scale:
            out["enable_per_channel_scale"] = True
        out["weight_threshold"] = self.weight_threshold
        return out


@dataclass(frozen=True)
class PruneConfig:
    """Magnitude pruning (``OpMagnitudePrunerConfig``): unstructured sparsity or n:m.

    Attributes:
        sparsity: fraction of weights set to zero (unstructured), in (0, 1).
        n_m: ``(n, m)``: n of every m consecutive weights are zero (instead of ``sparsity``).
        weight_threshold: weights with fewer elements are left as they are.
    """

    sparsity: float | None = 0.5
    n_m: tuple[int, int] | None = None
    weight_threshold: int = 2048

    @property
    def label(self) -> str:
        return f"prune {self.n_m[0]}:{self.n_m[1]}" if self.n_m else f"prune {self.sparsity:.0%}"

    def validate(self) -> None:
        _positive("weight_threshold", self.weight_threshold, 0)
        if self.n_m is not None:
            if len(self.n_m) != 2 or not all(isinstance(v, int) for v in self.n_m):
                raise InputError(f"n_m must be two integers (n, m); got {self.n_m!r}")
            n, m = self.n_m
            if not 0 < n <= m:
                raise InputError(f"n_m=({n}, {m}) needs 0 < n <= m (n of every m weights are zeroed)")
            return
        if self.sparsity is None or not 0.0 < float(self.sparsity) < 1.0:
            raise InputError(f"prune sparsity must be in (0, 1); got {self.sparsity!r}")

    def to_ct(self) -> Any:
        import coremltools.optimize.coreml as cto

        self.validate()
        if self.n_m is not None:
            return cto.OpMagnitudePrunerConfig(
                n_m_ratio=tuple(self.n_m), weight_threshold=self.weight_threshold
            )
        return cto.OpMagnitudePrunerConfig(
            target_sparsity=float(self.sparsity or 0.0), weight_threshold=self.weight_threshold
        )

    def yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weight_threshold": self.weight_threshold}
        if self.n_m is not None:
            out["n_m_ratio"] = list(self.n_m)
        else:
            out["target_sparsity"] = float(self.sparsity or 0.0)
        return out


@dataclass(frozen=True)
class JointConfig:
    """Prune, then palettize or quantize the sparse weights (iOS18 joint compression).

    Attributes:
        prune: the pruning step.
        then: a :class:`PalettizeConfig` or :class:`QuantizeConfig` applied to the non-zero weights.
    """

    prune: PruneConfig
    then: PalettizeConfig | QuantizeConfig

    @property
    def label(self) -> str:
        return f"{self.prune.label} + {self.then.label}"

    def validate(self) -> None:
        if not isinstance(self.prune, PruneConfig):
            raise InputError(f"JointConfig.prune must be a PruneConfig; got {type(self.prune).__name__}")
        if not isinstance(self.then, PalettizeConfig | QuantizeConfig):
            raise InputError(
                f"JointConfig.then must be a PalettizeConfig or QuantizeConfig; got {type(self.then).__name__}"
            )
        self.prune.validate()
        self.then.validate()


Config = Fp16Config | QuantizeConfig | PalettizeConfig | PruneConfig | JointConfig
CONFIG_TYPES = (Fp16Config, QuantizeConfig, PalettizeConfig, PruneConfig, JointConfig)
