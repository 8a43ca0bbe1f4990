// The activation rounding for Q8_0 / Q4_0 weights, bit-identical to the CPU backend's quantize_block_q8
// (backends/cpu/isa_kernels.h): per block of 32, amax = max|x|, d = amax / 127 (binary32), id = 1 / d (0 when d is
// 0), q = round-half-even(x * id) clamped to +-127 (NaN -> 0), and the block's scale is fp16(d) widened again.
// One warp per block: one value per lane, a shuffle max; traffic 4 bytes read and ~1.1 written per value.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// xf != nullptr: writes the rounded values d * q as floats instead of (xq, xd).
__global__ void quantize_q8_kernel(const float *__restrict__ x, uint64_t n_blocks, int8_t *__restrict__ xq,
                                   float *__restrict__ xd, float *__restrict__ xf) {
    const uint64_t b = uint64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / dev::kWarp;
    if (b >= n_blocks) return;
    const int lane = threadIdx.x % dev::kWarp;
    const float v = x[b * 32 + lane];
    float amax = fabsf(v);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    const float d = amax / 127.0f;  // IEEE division (nvcc's default -prec-div=true), as on the CPU
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    float r = rintf(v * id);  // round half to even
    r = fminf(fmaxf(r, -127.0f), 127.0f);
    const int8_t q = r == r ? int8_t(r) : int8_t(0);
    const float d16 = __half2float(__float2half_rn(d));
    if (xf) {
        xf[b * 32 + lane] = d16 * float(q);
        return;
    }
    xq[b * 32 + lane] = q;
    if (lane == 0) xd[b] = d16;
}

}  // namespace

size_t q8_bytes(uint64_t n, uint64_t n_cols) {
    const size_t values = (n * n_cols + 255) & ~size_t(255);
    return values + ((n * n_cols / 32 * sizeof(float) + 255) & ~size_t(255));
}

int32_t quantize_q8(cudaStream_t stream, const float *x, uint64_t n, uint64_t n_cols, int8_t *xq, float *xd) {
    const uint64_t n_blocks = n * n_cols / 32;
    if (n_blocks == 0) return PI_BK_OK;
    const uint64_t grid = (n_blocks + kWarpsPerBlock - 1) / kWarpsPerBlock;
    quantize_q8_kernel<<<unsigned(grid), kWarpsPerBlock * dev::kWarp, 0, stream>>>(x, n_blocks, xq, xd, nullptr);
    return check_launch("quantize_q8");
}

int32_t quantize_q8_values(cudaStream_t stream, const float *x, uint64_t n, uint64_t n_cols, float *out) {
    const uint64_t n_blocks = n * n_cols / 32;
    if (n_blocks == 0) return PI_BK_OK;
    const uint64_t grid = (n_blocks + kWarpsPerBlock - 1) / kWarpsPerBlock;
    quantize_q8_kernel<<<unsigned(grid), kWarpsPerBlock * dev::kWarp, 0, stream>>>(x, n_blocks, nullptr, nullptr, out);
    return check_launch("quantize_q8_values");
}

}  // namespace pi::cuda
