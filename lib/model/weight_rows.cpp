#include "model/weight_rows.h"

#include <vector>

#include "backends/cpu/numeric.h"
#include "common/error.h"

namespace pi {

void dequantize_row(const WeightView &w, uint64_t row, float *out) {
    const uint64_t n = w.cols();
    switch (w.type()) {
        case gguf::TensorType::F32: {
            const float *src = reinterpret_cast<const float *>(w.data) + row * n;
            for (uint64_t i = 0; i < n; ++i) out[i] = src[i];
            return;
        }
        case gguf::TensorType::F16:
        case gguf::TensorType::BF16: {
            const uint16_t *src = reinterpret_cast<const uint16_t *>(w.data) + row * n;
            const bool half = w.type() == gguf::TensorType::F16;
            for (uint64_t i = 0; i < n; ++i) out[i] = half ? cpu::fp16_to_fp32(src[i]) : cpu::bf16_to_fp32(src[i]);
            return;
        }
        case gguf::TensorType::Q8_0: {
            const auto *blocks = reinterpret_cast<const cpu::BlockQ8_0 *>(w.data) + row * (n / cpu::kQuantBlock);
            for (uint64_t b = 0; b < n / cpu::kQuantBlock; ++b) {
                const float d = cpu::fp16_to_fp32(blocks[b].d);
                for (size_t j = 0; j < cpu::kQuantBlock; ++j) out[b * cpu::kQuantBlock + j] = d * blocks[b].q[j];
            }
            return;
        }
        case gguf::TensorType::Q4_0: {
            const auto *blocks = reinterpret_cast<const cpu::BlockQ4_0 *>(w.data) + row * (n / cpu::kQuantBlock);
            for (uint64_t b = 0; b < n / cpu::kQuantBlock; ++b) {
                const float d = cpu::fp16_to_fp32(blocks[b].d);
                float *o = out + b * cpu::kQuantBlock;
                for (size_t j = 0; j < 16; ++j) {
                    o[j] = d * float(int(blocks[b].qs[j] & 0x0f) - 8);
                    o[j + 16] = d * float(int(blocks[b].qs[j] >> 4) - 8);
                }
            }
            return;
        }
        default:
            fail(PI_ERR_UNSUPPORTED, "tensor '" + w.info->name + "' has type " + gguf::tensor_type_name(w.type()));
    }
}

void matvec_reference(const WeightView &w, const float *x, float *y) {
    std::vector<float> row(w.cols());
    for (uint64_t r = 0; r < w.rows(); ++r) {
        dequantize_row(w, r, row.data());
        float sum = 0.0f;
        for (uint64_t i = 0; i < w.cols(); ++i) sum += row[i] * x[i];
        y[r] = sum;
    }
}

}  // namespace pi
