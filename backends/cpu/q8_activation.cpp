#include "backends/cpu/q8_activation.h"

#include <string>

#include "backends/cpu/isa_kernels.h"
#include "common/error.h"

namespace pi::cpu {
namespace {

void check_block_multiple(size_t n) {
    if (n % 32 != 0) {
        fail(PI_ERR_INVALID_ARGUMENT,
             "an activation of " + std::to_string(n) + " values cannot be quantized to 32-value Q8_0 blocks");
    }
}

}  // namespace

void quantize_row_q8_0(const float *x, size_t n, BlockQ8_0 *out) {
    check_block_multiple(n);
    for (size_t b = 0; b < n / 32; ++b) {
        detail::Q8BlockValues v = detail::quantize_block_q8(x + b * 32);
        out[b].d = v.d16;
        for (int i = 0; i < 32; ++i) out[b].q[i] = v.q[i];
    }
}

void Q8Activation::quantize(const float *x, size_t n, IsaLevel isa) {
    check_block_multiple(n);
    const size_t nb = n / 32;
    q_.reserve(n);
    d16_.reserve(nb);
    d_lanes_.reserve(nb * 8);
    neg8_.reserve(nb * 8);
    neg128_.reserve(nb * 8);
    n_ = n;
    const detail::Q8Out out{q_.data(), d16_.data(), d_lanes_.data(), neg8_.data(), neg128_.data()};
    detail::kernels(isa).quantize_q8(x, n, out);
}

void Q8Activation::to_blocks(BlockQ8_0 *out) const {
    for (size_t b = 0; b < n_blocks(); ++b) {
        out[b].d = d16_.data()[b];
        for (int i = 0; i < 32; ++i) out[b].q[i] = q_.data()[b * 32 + i];
    }
}

}  // namespace pi::cpu
