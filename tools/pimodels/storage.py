"""Weight types and the streaming GGUF writer.

Every 2-D tensor is stored in the model's weight type; 1-D tensors (norms, biases) always in F32. Quantized
types use ggml's block layouts through `gguf.quants` (Q8_0: 32 int8 + f16 scale; Q4_0: 32 nibbles + f16 scale).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Iterable

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quant_shape_to_byte_shape, quantize

WEIGHT_TYPES = {
    "f32": GGMLQuantizationType.F32,
    "f16": GGMLQuantizationType.F16,
    "bf16": GGMLQuantizationType.BF16,
    "q8_0": GGMLQuantizationType.Q8_0,
    "q4_0": GGMLQuantizationType.Q4_0,
}


def storage_type(shape: tuple[int, ...], wtype: str) -> GGMLQuantizationType:
    return WEIGHT_TYPES[wtype] if len(shape) == 2 else GGMLQuantizationType.F32


def encode(a: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """The bytes (as a numpy array) that the file stores for a float array."""
    return quantize(np.ascontiguousarray(a, dtype=np.float32), qtype)


def decode(data: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """What a reader gets back from encode(): float32 in the original shape."""
    return np.asarray(dequantize(data, qtype), dtype=np.float32)


def nbytes(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> int:
    if qtype == GGMLQuantizationType.F32:
        return 4 * int(np.prod(shape))
    if qtype == GGMLQuantizationType.F16:
        return 2 * int(np.prod(shape))
    return int(np.prod(quant_shape_to_byte_shape(shape, qtype)))


class TensorPlan:
    """One tensor to write: its name, numpy shape, stored type and a function producing its encoded data."""

    def __init__(self, name: str, shape: tuple[int, ...], qtype: GGMLQuantizationType,
                 produce: Callable[[], np.ndarray]):
        self.name, self.shape, self.qtype, self.produce = name, tuple(shape), qtype, produce


def write_gguf(path: str, arch: str, kv: Iterable[tuple[str, object, object]], vocab_fields: Iterable,
               tensors: list[TensorPlan], progress: bool = False) -> None:
    """Writes a GGUF v3 file: header, metadata and tensor infos first, then each tensor's data produced one at a
    time, so a model larger than RAM can be written. The file appears under `path` only when complete."""
    tmp = path + ".tmp"
    w = GGUFWriter(tmp, arch)
    for key, value, vtype in kv:
        w.add_key_value(key, value, vtype)
    for f in vocab_fields:
        w.add_key_value(f.key, f.value, f.vtype, f.sub_type)
    for t in tensors:
        if t.qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            dt = np.float32 if t.qtype == GGMLQuantizationType.F32 else np.float16
            w.add_tensor_info(t.name, t.shape, np.dtype(dt), nbytes(t.shape, t.qtype))
        else:  # byte arrays; the writer records the element shape
            w.add_tensor_info(t.name, quant_shape_to_byte_shape(t.shape, t.qtype), np.dtype(np.uint8),
                              nbytes(t.shape, t.qtype), raw_dtype=t.qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = sum(nbytes(t.shape, t.qtype) for t in tensors)
    done, t0 = 0, time.time()
    for i, t in enumerate(tensors):
        data = t.produce()
        expected = nbytes(t.shape, t.qtype)
        if data.nbytes != expected:
            raise AssertionError(f"{t.name}: produced {data.nbytes} bytes, expected {expected}")
        w.write_tensor_data(data)
        del data  # before producing the next one: at most one tensor in memory
        done += expected
        if progress:
            el = time.time() - t0
            print(f"[{i + 1}/{len(tensors)}] {t.name} {t.shape} {t.qtype.name}  "
                  f"{done / 2**30:.2f}/{total / 2**30:.2f} GiB  {el:.0f}s", file=sys.stderr, flush=True)
    w.close()
    os.replace(tmp, path)
