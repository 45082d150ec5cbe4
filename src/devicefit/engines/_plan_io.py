"""Save / restore the interpreter's prepared plan without pickle.

The plan's structure (steps, kernel names, small attribute values, specs) goes to ``plan.json``; every
tensor / array goes to ``weights.bin`` (raw bytes, 64-byte aligned, dtype and shape in the JSON). Restoring
needs neither coremltools nor the package: kernels are looked up again by (op type, opset), and the load
maps ``weights.bin`` copy-on-write, so restoring an 80 MB plan touches pages only as they are used.
Values of a type this module does not know raise :class:`Unserializable`; the engine then loads uncached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devicefit.interp.program import Block, FunctionPlan, Step, TensorSpec
from devicefit.interp.registry import OpContext, get_kernel

ALIGN = 64


class Unserializable(TypeError):
    """A plan value this module cannot store without pickle."""


class _Writer:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.by_id: dict[int, int] = {}  # one tensor shared by several steps is stored once
        self.keep: list[Any] = []  # keep objects alive so id() stays unique while encoding

    def array(self, obj: Any, arr: np.ndarray) -> int:
        idx = self.by_id.get(id(obj))
        if idx is None:
            idx = len(self.arrays)
            self.arrays.append(np.ascontiguousarray(arr))
            self.by_id[id(obj)] = idx
            self.keep.append(obj)
        return idx

    def enc(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, torch.Tensor):
            if v.dtype == torch.bfloat16:
                raise Unserializable("bfloat16 tensor")
            return {"__tensor": self.array(v, v.detach().cpu().numpy())}
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "fiub":
                raise Unserializable(f"numpy array of dtype {v.dtype}")
            return {"__np": self.array(v, v)}
        if isinstance(v, np.generic):
            return {"__npscalar": self.array(v, np.asarray(v))}
        if isinstance(v, torch.dtype):
            return {"__dtype": str(v).removeprefix("torch.")}
        if isinstance(v, list):
            return [self.enc(x) for x in v]
        if isinstance(v, tuple):
            return {"__tuple": [self.enc(x) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise Unserializable("dict with non-string keys")
            return {"__dict": {k: self.enc(x) for k, x in v.items()}}
        if isinstance(v, bytes):
            return {"__bytes": v.hex()}
        raise Unserializable(f"value of type {type(v).__name__}")

    def block(self, b: Block) -> dict[str, Any]:
        return {
            "inputs": b.inputs,
            "outputs": b.outputs,
            "input_dtypes": b.input_dtypes,
            "steps": [self.step(s) for s in b.steps],
        }

    def step(self, s: Step) -> dict[str, Any]:
        return {
            "op_type": s.op_type,
            "where": s.kernel.where,
            "name": s.name,
            "consts": self.enc(s.consts),
            "dyn": s.dyn,
            "dyn_attrs": [p for p, _ in s.dyn_attrs],
            "variadic": self.enc(s.variadic),
            "outputs": s.outputs,
            "round_fp16": s.round_fp16,
            "held": self.enc(s.held),
            "declared_shapes": self.enc(s.declared_shapes),
            "ctx": {
                "output_names": s.ctx.output_names,
                "output_dtypes": s.ctx.output_dtypes,
                "output_shapes": self.enc(s.ctx.output_shapes),
                "input_names": self.enc(s.ctx.input_names),
                "blocks": [self.block(b) for b in s.ctx.blocks],
            },
        }


def save_plan(plan: FunctionPlan, functions: list[str], folder: Path) -> dict[str, Any]:
    """Write ``plan.json`` + ``weights.bin`` into ``folder``; returns a small summary."""
    w = _Writer()
    doc = {
        "name": plan.name,
        "opset": plan.opset,
        "opset_name": plan.opset_name,
        "functions": functions,
        "inputs": [asdict(s) for s in plan.inputs],
        "outputs": [asdict(s) for s in plan.outputs],
        "states": [asdict(s) for s in plan.states],
        "op_counts": plan.op_counts,
        "constants": w.enc(plan.constants),
        "block": w.block(plan.block),
    }
    table = []
    offset = 0
    with (folder / "weights.bin").open("wb") as f:
        for arr in w.arrays:
            pad = (-offset) % ALIGN
            f.write(b"\0" * pad)
            offset += pad
            data = arr.tobytes()
            f.write(data)
            table.append({"offset": offset, "dtype": arr.dtype.str, "shape": list(arr.shape)})
            offset += len(data)
    doc["arrays"] = table
    (folder / "plan.json").write_text(json.dumps(doc))
    return {"arrays": len(table), "weight_bytes": offset}


class _Reader:
    def __init__(self, arrays: list[np.ndarray], opset: int) -> None:
        self.arrays = arrays
        self.opset = opset
        self.tensors: dict[int, torch.Tensor] = {}

    def dec(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "__tensor" in v:
            i = v["__tensor"]
            if i not in self.tensors:
                self.tensors[i] = torch.from_numpy(self.arrays[i])
            return self.tensors[i]
        if "__np" in v:
            return self.arrays[v["__np"]]
        if "__npscalar" in v:
            return self.arrays[v["__npscalar"]][()]
        if "__dtype" in v:
            return getattr(torch, v["__dtype"])
        if "__tuple" in v:
            return tuple(self.dec(x) for x in v["__tuple"])
        if "__dict" in v:
            return {k: self.dec(x) for k, x in v["__dict"].items()}
        if "__bytes" in v:
            return bytes.fromhex(v["__bytes"])
        raise ValueError(f"unknown tag in plan.json: {sorted(v)}")

    def block(self, d: dict[str, Any]) -> Block:
        return Block(
            inputs=d["inputs"],
            steps=[self.step(s) for s in d["steps"]],
            outputs=d["outputs"],
            input_dtypes=d["input_dtypes"],
        )

    def step(self, d: dict[str, Any]) -> Step:
        kernel = get_kernel(d["op_type"], self.opset)
        if kernel is None or kernel.where != d["where"]:
            raise ValueError(f"kernel for {d['op_type']!r} changed since the plan was cached")
        c = d["ctx"]
        ctx = OpContext(
            op_type=d["op_type"],
            name=d["name"],
            output_names=c["output_names"],
            output_dtypes=c["output_dtypes"],
            output_shapes=self.dec(c["output_shapes"]),
            blocks=[self.block(b) for b in c["blocks"]],
            input_names=self.dec(c["input_names"]),
        )
        return Step(
            kernel=kernel,
            op_type=d["op_type"],
            name=d["name"],
            consts=self.dec(d["consts"]),
            dyn=[tuple(x) for x in d["dyn"]],
            dyn_attrs=[(p, kernel.attrs[p]) for p in d["dyn_attrs"]],
            variadic=[(p, [tuple(i) for i in items]) for p, items in self.dec(d["variadic"])],
            outputs=d["outputs"],
            round_fp16=d["round_fp16"],
            ctx=ctx,
            held=self.dec(d["held"]),
            declared_shapes=self.dec(d["declared_shapes"]),
        )


def _spec(d: dict[str, Any]) -> TensorSpec:
    s = TensorSpec(**d)
    s.shape = tuple(s.shape) if s.shape is not None else None
    if s.shape_range is not None:
        s.shape_range = [tuple(r) for r in s.shape_range]  # type: ignore[misc]
    if s.enumerated_shapes is not None:
        s.enumerated_shapes = [tuple(e) for e in s.enumerated_shapes]
    return s


def load_plan(folder: Path) -> tuple[FunctionPlan, list[str]]:
    """Rebuild (plan, function names) from ``folder``; raises ValueError / KeyError when it is inconsistent."""
    doc = json.loads((folder / "plan.json").read_text())
    with (folder / "weights.bin").open("rb") as f:
        size = f.seek(0, 2)
        # ACCESS_COPY: private copy-on-write pages, so tensors are writable and the file is never modified
        buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else b""
    arrays = []
    for a in doc["arrays"]:
        dtype = np.dtype(a["dtype"])
        count = int(np.prod(a["shape"], dtype=np.int64))
        if a["offset"] + count * dtype.itemsize > size:
            raise ValueError("weights.bin is shorter than plan.json says")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=a["offset"]).reshape(a["shape"])
        arrays.append(arr)
    reader = _Reader(arrays, doc["opset"])
    plan = FunctionPlan(
        name=doc["name"],
        opset=doc["opset"],
        opset_name=doc["opset_name"],
        inputs=[_spec(s) for s in doc["inputs"]],
        outputs=[_spec(s) for s in doc["outputs"]],
        states=[_spec(s) for s in doc["states"]],
        block=reader.block(doc["block"]),
        constants=reader.dec(doc["constants"]),
        op_counts=doc["op_counts"],
    )
    return plan, doc["functions"]


@functools.cache
def interp_fingerprint() -> str:
    """What a cached plan depends on besides the package: the interpreter's sources, this plan format's code and
    coremltools' version (it parses the package). Computed once per process (hashing the sources takes
    milliseconds that every cached load would otherwise pay).
    """
    import importlib.metadata

    import devicefit.interp as interp_pkg

    h = hashlib.sha256()
    root = Path(interp_pkg.__file__).parent
    for p in [*sorted(root.rglob("*.py")), Path(__file__)]:
        h.update(p.relative_to(root.parent).as_posix().encode())
        h.update(p.read_bytes())
    try:
        h.update(f"coremltools-{importlib.metadata.version('coremltools')}".encode())
    except importlib.metadata.PackageNotFoundError:
        h.update(b"coremltools-none")
    return h.hexdigest()[:16]
