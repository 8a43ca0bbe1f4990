// The weight types the CPU kernels compute with, and a view of a weight matrix in ggml's row layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pi::cpu {

// Numbered as ggml numbers tensor types, so a GGUF tensor type converts with a static_cast; Q4_0R is the engine's
// own and never comes from a file.
//
// Q4_0R ("Q4_0, codes first"): the values and bytes of a Q4_0 row rearranged for the AVX-512 dot kernel: the row's
// n/32 blocks' 16 code bytes one after another, then their n/32 fp16 scales (same row size as Q4_0). Four blocks'
// codes are then one 64-byte load, with no shuffle to gather them (backends/cpu/q4_0_repack.h).
//
// F16X8 ("F16, eight rows interleaved"): the values of an F16 matrix of n_rows % 8 == 0 rows of n_cols % 64 == 0
// weights, stored so that the AVX-512 dot reads eight rows as one sequential stream: group g (rows 8g..8g+7) is
// n_cols / 64 steps of 1 KiB, each the eight rows' next 64 weights (128 bytes a row) one after another
// (backends/cpu/f16_interleave.h). row() is not a row's address for this type: only the F16X8 helpers and the
// AVX-512 dot read it; every other kernel gets rows gathered back to F16 by the kernel table.
//
// Q4_0X8 ("Q4_0, eight rows interleaved"): the values of a Q4_0 matrix of n_rows % 8 == 0 rows, stored so that the
// AVX-512 dot reads eight rows as one sequential stream: group g (rows 8g..8g+7) is a run of 2304-byte steps, each the
// eight rows' next 16 blocks' fp16 scales, then their code bytes (256 a row, in chunks whose int32 lane j holds block
// j's bytes); a last step of fewer blocks is shorter (backends/cpu/q4_0_interleave.h has the byte positions). Same size as Q4_0; row() is not a row's address:
// only the Q4_0X8 helpers and the AVX-512 dot read it, every other kernel gets rows gathered back to Q4_0.
enum class WeightType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    BF16 = 30,
    Q4_0R = 1002,
    F16X8 = 1003,
    Q4_0X8 = 1004
};

const char *weight_type_name(WeightType type);

// Whether `type` is one of the enumerators above (a cast from a file's id may not be).
bool weight_type_valid(WeightType type);

// Q8_0, Q4_0, Q4_0R and Q4_0X8: the matvec kernels take their input quantized to 8-bit blocks (Q8Activation).
inline bool weight_type_is_quantized(WeightType type) {
    return type == WeightType::Q8_0 || type == WeightType::Q4_0 || type == WeightType::Q4_0R ||
           type == WeightType::Q4_0X8;
}

// The engine's own layouts of a file type (Q4_0R, F16X8, Q4_0X8): the kernel table hands their rows to the kernels
// that do not read them natively unpacked, one row at a time (backends/cpu/kernel_table.cpp).
inline bool weight_type_is_repacked(WeightType type) {
    return type == WeightType::Q4_0R || type == WeightType::F16X8 || type == WeightType::Q4_0X8;
}

// Rows a dot kernel reads together: 8 for the interleaved layouts (F16X8, Q4_0X8), else 1. A row range of such a
// matrix is fastest when it starts and ends at whole groups (matvec's chunks and the prefill tiles do).
inline size_t weight_type_group_rows(WeightType type) {
    return type == WeightType::F16X8 || type == WeightType::Q4_0X8 ? 8 : 1;
}

// Weights per block: 32 for the quantized types, 1 for the float types.
size_t weight_type_block_weights(WeightType type);

// Bytes of one row of n weights. Throws pi::Error(PI_ERR_INVALID_ARGUMENT) when the type is unknown or n is not a
// whole number of blocks.
size_t weight_row_bytes(WeightType type, size_t n);

// A row-major weight matrix: row r starts at data + r * row_stride and holds n_cols weights of `type` (ggml's
// layout: an n_out x n_in linear layer has n_out rows of n_in). Not owning.
struct WeightMatrix {
    const void *data = nullptr;
    WeightType type = WeightType::F32;
    size_t n_rows = 0;
    size_t n_cols = 0;
    size_t row_stride = 0;  // bytes; at least weight_row_bytes(type, n_cols)

    const uint8_t *row(size_t r) const { return static_cast<const uint8_t *>(data) + r * row_stride; }
};

// A contiguous matrix (row_stride = weight_row_bytes), the layout of a GGUF tensor.
WeightMatrix make_weight_matrix(const void *data, WeightType type, size_t n_rows, size_t n_cols);

// Throws pi::Error(PI_ERR_INVALID_ARGUMENT) naming `what` when the view is unusable: null data with rows, unknown
// type, n_cols not whole blocks, or a stride shorter than a row.
void check_weight_matrix(const WeightMatrix &w, const char *what);

}  // namespace pi::cpu
