// GGUF value and tensor types as numbered in the file format (ggml's numbering), and the block layouts of the
// tensor types the engine understands.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pi::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};

// ggml tensor type ids. Only F32, F16, BF16, Q8_0 and Q4_0 are supported; the others are named (with their block
// sizes) so that an error can say which type a file uses and tools can still bounds-check such files. Ids 4, 5 and
// 31-33 were retired by ggml; any id not listed here is unknown.
enum class TensorType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
};

// Q8_0: 32 weights per block = fp16 scale d + 32 x int8;          w = d * q
// Q4_0: 32 weights per block = fp16 scale d + 16 bytes of nibbles; w = d * (q - 8), byte j holds weight j in its
//       low nibble and weight j + 16 in its high nibble.
constexpr size_t kQ8_0BlockWeights = 32;
constexpr size_t kQ8_0BlockBytes = 2 + 32;
constexpr size_t kQ4_0BlockWeights = 32;
constexpr size_t kQ4_0BlockBytes = 2 + 16;

// The name used in messages ("Q4_K"), or "type <id>" for ids ggml never assigned.
std::string tensor_type_name(TensorType type);

// Whether the engine can compute with this type.
bool tensor_type_supported(TensorType type);

// Whether the block layout of this id is known (every enumerator above); false for any other id.
bool tensor_type_known(TensorType type);

// Weights per block and bytes per block of a known type (F32: 1 and 4, F16/BF16: 1 and 2, Q8_0: 32 and 34, ...);
// 0 for an unknown id.
size_t tensor_type_block_weights(TensorType type);
size_t tensor_type_block_bytes(TensorType type);

// The name of a metadata value type ("UINT32", "ARRAY"), or "value type <id>" for an unknown id.
std::string value_type_name(ValueType type);
// Whether the id is one of the 13 value types of the format.
bool value_type_known(ValueType type);

}  // namespace pi::gguf
