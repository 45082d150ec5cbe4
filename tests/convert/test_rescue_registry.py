"""Rescue translations live in coremltools' registry only while devicefit converts or scans."""

from __future__ import annotations

import pytest

from devicefit.convert import RESCUES, ConvertOptions, convert, rescue_translations, scan
from devicefit.convert.rescue import is_rescue
from devicefit.sources import load_source
from tests.convert.models import spec

KEYS = (
    "bitwise_and",
    "and",
    "__and__",
    "__and_",
    "diff",
    "new_ones",
    "alias",
    "_native_multi_head_attention",
)


def _snapshot() -> dict:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    mapping = _TORCH_OPS_REGISTRY.name_to_func_mapping
    return {key: mapping.get(key) for key in KEYS}


def test_registry_untouched_after_convert_and_scan():
    before = _snapshot()
    assert not any(is_rescue(fn) for fn in before.values())
    source = load_source(spec("float_mask_and"))
    result = convert(source, ConvertOptions(precision="fp32", frontend="torchscript"))
    assert "bitwise_and" in result.scan.rescued
    assert _snapshot() == before
    scan(source)
    assert _snapshot() == before


def test_registry_holds_rescues_inside_the_block_and_nests():
    before = _snapshot()
    with rescue_translations() as active:
        assert {"new_ones", "diff", "bitwise_and"} <= set(active) <= set(RESCUES)
        inside = _snapshot()
        assert is_rescue(inside["bitwise_and"]) and is_rescue(inside["diff"])
        with rescue_translations() as again:
            assert again == active
        assert _snapshot() == inside  # the inner exit leaves the outer installation alone
    assert _snapshot() == before


def test_registry_restored_after_an_error():
    before = _snapshot()
    with pytest.raises(RuntimeError), rescue_translations():
        raise RuntimeError("conversion blew up")
    assert _snapshot() == before
