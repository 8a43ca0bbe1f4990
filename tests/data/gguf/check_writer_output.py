#!/usr/bin/env python3
"""Checks, with the `gguf` package's GGUFReader, the file that tests/unit/gguf_writer_test.cpp writes with our
C++ Writer ("gguf writer output is read correctly by the Python gguf package"). Exit 0 when every value and tensor
matches; otherwise prints each mismatch and exits 1. Keep the expectations in sync with that test case."""

import sys

import numpy as np

import gguf
from gguf import GGUFValueType as V

EXPECTED = {
    # key: (types as GGUFReader reports them, contents())
    "general.architecture": ([V.STRING], "llama"),
    "t.u8": ([V.UINT8], 250),
    "t.i8": ([V.INT8], -7),
    "t.u16": ([V.UINT16], 65000),
    "t.i16": ([V.INT16], -1234),
    "t.u32": ([V.UINT32], 123456789),
    "t.i32": ([V.INT32], -123456789),
    "t.f32": ([V.FLOAT32], 2.5),
    "t.bool": ([V.BOOL], True),
    "t.string": ([V.STRING], "caf\u00e9"),
    "t.u64": ([V.UINT64], 2**64 - 1),
    "t.i64": ([V.INT64], -(2**63)),
    "t.f64": ([V.FLOAT64], 0.1),
    "t.arr.i32": ([V.ARRAY, V.INT32], [3, -4]),
    "t.arr.str": ([V.ARRAY, V.STRING], ["a", "bc"]),
    # GGUFReader flattens nested arrays in contents().
    "t.nested": ([V.ARRAY, V.ARRAY, V.UINT16], [1, 2, 3]),
}


def main() -> int:
    reader = gguf.GGUFReader(sys.argv[1])
    errors = []

    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    if list(fields) != list(EXPECTED):
        errors.append(f"keys {list(fields)} != {list(EXPECTED)}")
    for key, (types, contents) in EXPECTED.items():
        field = fields.get(key)
        if field is None:
            continue
        if field.types != types:
            errors.append(f"{key}: types {field.types} != {types}")
        if field.contents() != contents:
            errors.append(f"{key}: contents {field.contents()!r} != {contents!r}")

    tensors = {t.name: t for t in reader.tensors}
    expected_tensors = {
        "w.f32": (gguf.GGMLQuantizationType.F32, [3, 2], np.arange(6, dtype=np.float32) - 2.5),
        "w.f16": (gguf.GGMLQuantizationType.F16, [4], np.array([1, 2, 3, 4], dtype=np.float32)),
        "w.q8_0": (gguf.GGMLQuantizationType.Q8_0, [32], (np.arange(32, dtype=np.float32) - 16) * 0.5),
    }
    if list(tensors) != list(expected_tensors):
        errors.append(f"tensors {list(tensors)} != {list(expected_tensors)}")
    for name, (qtype, shape, values) in expected_tensors.items():
        t = tensors.get(name)
        if t is None:
            continue
        if t.tensor_type != qtype:
            errors.append(f"{name}: type {t.tensor_type.name} != {qtype.name}")
        if [int(d) for d in t.shape] != shape:
            errors.append(f"{name}: shape {list(t.shape)} != {shape}")
        got = gguf.quants.dequantize(t.data, qtype).reshape(-1).astype(np.float32)
        if not np.array_equal(got, values):
            errors.append(f"{name}: data {got} != {values}")

    for e in errors:
        print("check_writer_output:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
