#include "backends/cpu/row_convert.h"

#include <string>

#include "backends/cpu/isa_kernels.h"
#include "common/error.h"

namespace pi::cpu {

void dequantize_rows(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld, IsaLevel isa) {
    check_weight_matrix(w, "dequantize_rows");
    if (r0 > r1 || r1 > w.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT, "dequantize_rows: row range [" + std::to_string(r0) + ", " + std::to_string(r1) +
                                          ") is not within " + std::to_string(w.n_rows) + " rows");
    }
    if (r0 == r1) return;
    if (!out || ld < w.n_cols) fail(PI_ERR_INVALID_ARGUMENT, "dequantize_rows: bad output buffer");
    detail::kernels(isa).rows_to_f32(w, r0, r1, out, ld);
}

void convert_f32_to_bf16(const float *x, size_t n, uint16_t *out, IsaLevel isa) {
    if (n == 0) return;
    if (!x || !out) fail(PI_ERR_INVALID_ARGUMENT, "convert_f32_to_bf16: missing buffer");
    detail::kernels(isa).f32_to_bf16(x, n, out);
}

void convert_f32_to_f16(const float *x, size_t n, uint16_t *out, IsaLevel isa) {
    if (n == 0) return;
    if (!x || !out) fail(PI_ERR_INVALID_ARGUMENT, "convert_f32_to_f16: missing buffer");
    detail::kernels(isa).f32_to_f16(x, n, out);
}

}  // namespace pi::cpu
