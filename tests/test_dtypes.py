"""The shared dtype table: proto enums against coremltools' own proto, element sizes, numpy mapping."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import dtypes

# Sizes written out by hand (not derived from the table under test).
EXPECTED_BITS = {
    "fp64": 64, "fp32": 32, "fp16": 16, "bf16": 16, "int64": 64, "uint64": 64, "int32": 32, "uint32": 32,
    "int16": 16, "uint16": 16, "int8": 8, "uint8": 8, "int4": 4, "uint4": 4, "uint6": 6, "uint3": 3,
    "uint2": 2, "uint1": 1, "bool": 8,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED_BITS))
def test_element_sizes(name: str) -> None:
    assert dtypes.bits_per_element(name) == EXPECTED_BITS[name]
    assert dtypes.bytes_per_element(name) == EXPECTED_BITS[name] / 8


def test_every_mil_dtype_has_a_size_and_a_numpy_type() -> None:
    assert set(dtypes.MIL_BITS) == set(EXPECTED_BITS) == set(dtypes.MIL_TO_NUMPY)


def test_sub_byte_tensors_pack_densely() -> None:
    assert dtypes.tensor_bytes("int4", 3) == 2  # 12 bits round up to 2 bytes
    assert dtypes.tensor_bytes("uint6", 4) == 3
    assert dtypes.tensor_bytes("uint1", 9) == 2
    assert dtypes.tensor_bytes("fp16", 10) == 20
    assert dtypes.tensor_bytes("no-such-type", 10) == 40  # unknown: fp32-sized
    assert dtypes.bytes_per_element(None) == 4.0


def test_numpy_itemsize_matches_whole_byte_types() -> None:
    for name, bits in EXPECTED_BITS.items():
        if bits >= 8 and name != "bf16":
            assert dtypes.numpy_dtype(name).itemsize * 8 == bits, name


# Each proto enum by its coremltools name -> the numpy dtype it must map to.
PROTO_EXPECTED = {
    "FLOAT32": np.float32,
    "DOUBLE": np.float64,
    "FLOAT16": np.float16,
    "INT32": np.int32,
    "INT8": np.int8,
}


@pytest.mark.parametrize("enum_name", sorted(PROTO_EXPECTED))
def test_proto_enum_against_coremltools(enum_name: str) -> None:
    from coremltools.proto import FeatureTypes_pb2

    value = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Value(enum_name)
    assert dtypes.proto_array_numpy(value) == np.dtype(PROTO_EXPECTED[enum_name])
    assert dtypes.numpy_dtype(dtypes.proto_array_mil(value) or "") == np.dtype(PROTO_EXPECTED[enum_name])


def test_every_coremltools_proto_enum_is_covered() -> None:
    from coremltools.proto import FeatureTypes_pb2

    for name, value in FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items():
        if name == "INVALID_ARRAY_DATA_TYPE":
            assert dtypes.proto_array_numpy(value) is None
        else:
            assert name in PROTO_EXPECTED, f"new proto dtype {name}: add it to devicefit.dtypes"


def test_numpy_to_mil_ignores_byte_order_and_refuses_objects() -> None:
    assert dtypes.mil_dtype(np.dtype(">i4")) == "int32"
    assert dtypes.mil_dtype(np.dtype(">f8")) == "fp64"
    assert dtypes.mil_dtype(np.dtype(object)) is None
    assert dtypes.mil_dtype(np.complex64, "fp32") == "fp32"


def test_no_torch_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, devicefit.dtypes; assert 'torch' not in sys.modules, 'devicefit.dtypes imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_coreml_source_reads_double_and_int8_inputs() -> None:
    """sources.load mapped DOUBLE to float32 and did not know INT8."""
    from coremltools.proto import FeatureTypes_pb2, Model_pb2

    from devicefit.sources.coreml_hf import _coreml_input_spec

    for enum_name, expected in (("DOUBLE", "float64"), ("INT8", "int8"), ("FLOAT16", "float16")):
        feature = Model_pb2.FeatureDescription(name="x")
        feature.type.multiArrayType.shape.extend([1, 2])
        feature.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Value(
            enum_name
        )
        assert _coreml_input_spec(feature).dtype == expected
