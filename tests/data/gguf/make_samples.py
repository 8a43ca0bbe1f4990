#!/usr/bin/env python3
"""Writes the small GGUF sample files that tests/unit/gguf_python_samples_test.cpp reads back.

The files are written by the `gguf` Python package (GGUFWriter), the reference writer of the llama.cpp family, so the
test checks our reader against files we did not write ourselves. Contents follow simple formulas chosen so that every
value is exact in its type (including after Q8_0/Q4_0 quantization with gguf.quants.quantize); the C++ test asserts
the same formulas independently. Change both together.

    python3 tests/data/gguf/make_samples.py          # rewrites the samples and the fuzz seed corpus

Files:
  all_types_v3.gguf     every metadata value type, typed arrays, a string array, nested arrays (3 levels);
                        tensors F32, F16, BF16, Q8_0, Q4_0
  v2_align64.gguf       GGUF version 2 with general.alignment = 64 and tensors whose sizes need padding
  unsupported_types.gguf tensors of types the engine does not compute with (Q4_K, I32)
"""

import shutil
import sys
from pathlib import Path

import numpy as np

import gguf
import gguf.gguf_writer
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

HERE = Path(__file__).resolve().parent
FUZZ_CORPUS = HERE.parent.parent / "fuzz" / "corpus" / "gguf"


def f32_values():
    # F32 tensor 'f32' (numpy shape (2, 3), ggml dims [3, 2]): i * 0.25 - 1
    return (np.arange(6, dtype=np.float32) * 0.25 - 1).reshape(2, 3)


def f16_values():
    # F16 tensor 'f16' (numpy (4, 8), ggml [8, 4]): (i - 16) * 0.5
    return ((np.arange(32, dtype=np.float32) - 16) * 0.5).reshape(4, 8)


def bf16_values():
    # BF16 tensor 'bf16' (numpy (2, 16), ggml [16, 2]): (i - 10) * 0.125
    return ((np.arange(32, dtype=np.float32) - 10) * 0.125).reshape(2, 16)


def q8_0_values():
    # Q8_0 tensor 'q8_0' (numpy (2, 64), ggml [64, 2]; 4 blocks). Block b, element j: k * 2^-(b+1) with
    # k = ((j * 8 + b * 3) % 255) - 127 and element 0 forced to -127, so that each block's max |x| is
    # 127 * 2^-(b+1): the Q8_0 scale 2^-(b+1) is exact in fp16 and every k round-trips.
    out = np.zeros(128, dtype=np.float32)
    for b in range(4):
        for j in range(32):
            k = -127 if j == 0 else ((j * 8 + b * 3) % 255) - 127
            out[b * 32 + j] = k * 2.0 ** -(b + 1)
    return out.reshape(2, 64)


def q4_0_values():
    # Q4_0 tensor 'q4_0' (numpy (1, 64), ggml [64, 1]; 2 blocks). Block b, element j: k * c_b with
    # k = ((j * 5 + b) % 15) - 7 (in -7..7) and element 3 forced to -8, c = [0.25, 1.5]. The element of largest
    # magnitude is -8 * c, so ggml's scale d = max / -8 = c is exact and every k round-trips.
    c = [0.25, 1.5]
    out = np.zeros(64, dtype=np.float32)
    for b in range(2):
        for j in range(32):
            k = -8 if j == 3 else ((j * 5 + b) % 15) - 7
            out[b * 32 + j] = k * c[b]
    return out.reshape(1, 64)


def write_all_types(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="test")  # adds general.architecture = "test" first
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool_true", True)
    w.add_bool("t.bool_false", False)
    w.add_string("t.string", "h\u00e9llo \u2713")
    w.add_key_value("t.empty_string", "", V.STRING)  # add_string() skips empty strings
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 3.141592653589793)
    w.add_key_value("t.arr.u8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr.i8", [-128, 0, 127], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("t.arr.u16", [0, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("t.arr.i16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("t.arr.u32", [1, 4294967295], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("t.arr.i32", [-2147483648, 2147483647, 5], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.arr.f32", [0.5, -2.25, 1e-3], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("t.arr.string", ["a", "", "\u00fcn\u00ef"])
    w.add_key_value("t.arr.u64", [0, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("t.arr.i64", [-(2**63), 2**63 - 1], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("t.arr.f64", [1e300, -0.1], V.ARRAY, sub_type=V.FLOAT64)
    # Nested arrays: the package infers INT32 / STRING for the inner arrays from the Python values.
    w.add_array("t.nested.int", [[1, 2, 3], [4], [5, 6]])
    w.add_array("t.nested.string", [["x", "y"], ["z"]])
    w.add_array("t.nested.deep", [[[1], [2, 3]], [[4]]])

    w.add_tensor("f32", f32_values())
    w.add_tensor("f16", f16_values().astype(np.float16))
    w.add_tensor("bf16", gguf.quants.quantize(bf16_values(), Q.BF16), raw_dtype=Q.BF16)
    w.add_tensor("q8_0", gguf.quants.quantize(q8_0_values(), Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_0", gguf.quants.quantize(q4_0_values(), Q.Q4_0), raw_dtype=Q.Q4_0)
    finish(w)

    # The formulas above must survive quantization exactly, or the C++ test's exact comparisons are meaningless.
    for name, values, qtype in [("q8_0", q8_0_values(), Q.Q8_0), ("q4_0", q4_0_values(), Q.Q4_0),
                                ("bf16", bf16_values(), Q.BF16)]:
        back = gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype)
        assert np.array_equal(back, values), f"{name} does not round-trip exactly"


def write_v2_align64(path: Path) -> None:
    # GGUFWriter always writes GGUF_VERSION (3). Versions 2 and 3 share the layout (3 only added big-endian files),
    # so writing the constant 2 yields a genuine v2 file.
    saved = gguf.gguf_writer.GGUF_VERSION
    gguf.gguf_writer.GGUF_VERSION = 2
    try:
        w = gguf.GGUFWriter(str(path), arch="test")
        w.add_custom_alignment(64)
        w.add_name("v2 sample")
        w.add_uint32("t.u32", 7)
        # 5 x F32 = 20 bytes, 3x3 F16 = 18 bytes, 1 Q8_0 block = 34 bytes: each needs padding to 64.
        w.add_tensor("a", np.arange(1, 6, dtype=np.float32))
        w.add_tensor("b", (np.arange(9, dtype=np.float32) * -1.5).reshape(3, 3).astype(np.float16))
        w.add_tensor("c", gguf.quants.quantize(q8_0_values()[:1, :32].copy(), Q.Q8_0), raw_dtype=Q.Q8_0)
        finish(w)
    finally:
        gguf.gguf_writer.GGUF_VERSION = saved


def write_unsupported(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="test")
    # One Q4_K block (256 weights, 144 bytes) of arbitrary bytes and a 2x2 I32 tensor.
    w.add_tensor("blk.0.ffn_up.weight", np.arange(144, dtype=np.uint8), raw_dtype=Q.Q4_K)
    w.add_tensor("ids", np.array([[1, -2], [3, -4]], dtype=np.int32))
    finish(w)


def finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> int:
    samples = {
        "all_types_v3.gguf": write_all_types,
        "v2_align64.gguf": write_v2_align64,
        "unsupported_types.gguf": write_unsupported,
    }
    FUZZ_CORPUS.mkdir(parents=True, exist_ok=True)
    for name, write in samples.items():
        write(HERE / name)
        shutil.copyfile(HERE / name, FUZZ_CORPUS / name)
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
