"""Seeded mutations of a saved .mlpackage, for the package-reader fuzz test (tests/interp/test_fuzz.py).

Each case copies a pristine package and damages it one way: byte-level (truncation, bit flips, byte
insertions, deletions, overwrites) of the protobuf model, ``weight.bin`` or ``Manifest.json``; structural
(a file missing, renamed, replaced by a folder or an empty file; a Manifest value of the wrong JSON type);
or field-level (one scalar field anywhere in the parsed protobuf set to a hostile value, which gets past
the protobuf decoder and into coremltools' loader, the compiler and the kernels).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOSTILE_INTS = [0, 1, -1, 2, 3, 7, 64, 255, 2**16, 2**31 - 1, -(2**31), 2**32 + 1, 2**62, 2**63 - 1, -(2**63)]
HOSTILE_UINTS = [0, 1, 2, 3, 7, 64, 255, 2**16, 2**31 - 1, 2**32 + 1, 2**62, 2**64 - 1]
HOSTILE_FLOATS = [0.0, -0.0, 1e-45, -1.0, 1e38, float("inf"), float("-inf"), float("nan")]
HOSTILE_STRINGS = [
    "",
    "x",
    "..",
    "../../x",
    "/etc/passwd",
    "@model_path/weights/",
    "a" * 5000,
    "fp16",
    "main",
]
JSON_VALUES: list[Any] = [None, 0, 1.5, -1, [], [1], {}, {"a": None}, "", "../..", "/", True]


@dataclass
class Case:
    """One mutation: what was done, for the failure message."""

    index: int
    description: str


def files_of(pkg: Path) -> dict[str, Path]:
    manifest = json.loads((pkg / "Manifest.json").read_text())
    entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
    return {
        "manifest": pkg / "Manifest.json",
        "model": pkg / "Data" / entry["path"],
        "weights": next(pkg.rglob("weight.bin")),
    }


def _mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(["truncate", "flip", "insert", "delete", "overwrite", "empty"])
    if kind == "empty" or not buf:
        return b"", "emptied"
    pos = rng.randrange(len(buf))
    if kind == "truncate":
        return bytes(buf[:pos]), f"truncated to {pos} bytes"
    if kind == "flip":
        flips = rng.randint(1, 8)
        for _ in range(flips):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf), f"{flips} bit flips"
    if kind == "insert":
        n = rng.randint(1, 16)
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(buf), f"{n} bytes inserted at {pos}"
    if kind == "delete":
        n = rng.randint(1, 16)
        del buf[pos : pos + n]
        return bytes(buf), f"{n} bytes deleted at {pos}"
    n = rng.randint(1, 8)
    buf[pos : pos + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(buf[: len(data)]), f"{n} bytes overwritten at {pos}"


def _scalar_fields(message: Any, found: list[tuple[Any, Any]], depth: int = 0) -> None:
    """Every (message, field descriptor) holding a scalar, a repeated field or a string, depth-first."""
    if depth > 60:
        return
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            if field.is_repeated:
                if field.message_type.GetOptions().map_entry:
                    items = list(value.values()) if hasattr(value, "values") else []
                    for item in items:
                        if hasattr(item, "ListFields"):
                            _scalar_fields(item, found, depth + 1)
                else:
                    found.append((message, field))
                    for item in value:
                        _scalar_fields(item, found, depth + 1)
            else:
                _scalar_fields(value, found, depth + 1)
        else:
            found.append((message, field))


def _mutate_proto(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(data)
    found: list[tuple[Any, Any]] = []
    _scalar_fields(spec, found)
    message, field = rng.choice(found)
    name = f"{message.DESCRIPTOR.name}.{field.name}"
    if field.is_repeated:
        values = getattr(message, field.name)
        if len(values) and rng.random() < 0.6:
            del values[rng.randrange(len(values))]
            return spec.SerializeToString(), f"proto {name}: one element removed"
        if field.type != field.TYPE_MESSAGE and len(values):
            values.append(values[rng.randrange(len(values))])
            return spec.SerializeToString(), f"proto {name}: one element duplicated"
        if field.type == field.TYPE_MESSAGE and len(values):
            values.add().CopyFrom(values[rng.randrange(len(values))])
            return spec.SerializeToString(), f"proto {name}: one element duplicated"
        return spec.SerializeToString(), f"proto {name}: unchanged (empty repeated)"
    t = field.type
    if t in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        value: Any = rng.choice([v for v in HOSTILE_INTS if -(2**31) <= v < 2**31])
    elif t in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        value = rng.choice(HOSTILE_INTS)
    elif t in (field.TYPE_UINT32, field.TYPE_FIXED32):
        value = rng.choice([v for v in HOSTILE_UINTS if v < 2**32])
    elif t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        value = rng.choice(HOSTILE_UINTS)
    elif t in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        value = rng.choice(HOSTILE_FLOATS)
    elif t == field.TYPE_BOOL:
        value = not getattr(message, field.name)
    elif t == field.TYPE_STRING:
        value = rng.choice(HOSTILE_STRINGS)
    elif t == field.TYPE_BYTES:
        value, _ = _mutate_bytes(rng, getattr(message, field.name))
    elif t == field.TYPE_ENUM:
        value = rng.choice([v.number for v in field.enum_type.values] + [0, 1, 9999])
    else:
        return spec.SerializeToString(), f"proto {name}: unchanged"
    try:
        setattr(message, field.name, value)
    except (ValueError, TypeError):
        return spec.SerializeToString(), f"proto {name}: value {value!r} refused by protobuf"
    shown = repr(value) if not isinstance(value, (str, bytes)) or len(value) < 40 else f"<{len(value)} chars>"
    return spec.SerializeToString(), f"proto {name} = {shown}"


def _mutate_manifest_json(rng: random.Random, path: Path) -> str:
    manifest = json.loads(path.read_text())
    root = manifest["rootModelIdentifier"]
    target = rng.choice(["root", "entries", "entry", "path", "whole"])
    value = rng.choice(JSON_VALUES)
    if target == "root":
        manifest["rootModelIdentifier"] = value
    elif target == "entries":
        manifest["itemInfoEntries"] = value
    elif target == "entry":
        manifest["itemInfoEntries"][root] = value
    elif target == "path":
        manifest["itemInfoEntries"][root]["path"] = value
    else:
        manifest = value
    path.write_text(json.dumps(manifest))
    return f"Manifest {target} = {value!r}"


def mutate(pristine: Path, dest: Path, rng: random.Random, index: int) -> Case:
    """Copy ``pristine`` to ``dest`` and apply one random mutation to the copy."""
    shutil.copytree(pristine, dest)
    files = files_of(dest)
    roll = rng.random()
    if roll < 0.08:
        which = rng.choice(sorted(files))
        action = rng.choice(["delete", "rename", "folder", "empty"])
        path = files[which]
        path.unlink()
        if action == "rename":
            path.with_name(path.name + ".renamed").write_bytes(b"")
        elif action == "folder":
            path.mkdir()
            (path / "inside").write_bytes(b"x")
        elif action == "empty":
            path.write_bytes(b"")
        return Case(index, f"{which} file: {action}")
    if roll < 0.16:
        return Case(index, _mutate_manifest_json(rng, files["manifest"]))
    if roll < 0.55:
        data, what = _mutate_proto(rng, files["model"].read_bytes())
        files["model"].write_bytes(data)
        return Case(index, what)
    which = rng.choice(["model", "model", "weights", "weights", "manifest"])
    data, what = _mutate_bytes(rng, files[which].read_bytes())
    files[which].write_bytes(data)
    return Case(index, f"{which}: {what}")
