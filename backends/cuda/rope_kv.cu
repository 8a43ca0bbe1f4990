// RoPE (in place) and the KV-cache store: elementwise kernels, one thread per rotated pair / stored value.
// The rotation and the rounding are rope_math.cuh's (shared with attention_decode.cu).
#include <cuda_fp16.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/rope_math.cuh"

namespace pi::cuda {
namespace {

__global__ void rope_kernel(float *x, uint64_t n, uint64_t row_stride, uint32_t n_heads, uint32_t head_dim,
                            uint32_t rope_dim, uint32_t pos0, float base, uint32_t mode) {
    const uint32_t half = rope_dim / 2;
    const uint64_t total = n * n_heads * half;
    for (uint64_t idx = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; idx < total;
         idx += uint64_t(gridDim.x) * blockDim.x) {
        const uint32_t i = uint32_t(idx % half);
        const uint64_t th = idx / half;
        const uint32_t h = uint32_t(th % n_heads);
        const uint64_t t = th / n_heads;
        dev::rotate_pair(x + t * row_stride + uint64_t(h) * head_dim, i, rope_dim, mode, base, float(pos0 + t));
    }
}

template <typename E>
__global__ void kv_store_kernel(E *k_cache, E *v_cache, uint32_t kv_dim, uint32_t pos0, uint64_t n,
                                const float *__restrict__ k, const float *__restrict__ v, uint64_t row_stride) {
    const uint64_t total = n * kv_dim;
    for (uint64_t idx = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; idx < total;
         idx += uint64_t(gridDim.x) * blockDim.x) {
        const uint64_t t = idx / kv_dim, i = idx % kv_dim;
        const uint64_t dst = (pos0 + t) * kv_dim + i;
        k_cache[dst] = dev::to_cache<E>(k[t * row_stride + i]);
        v_cache[dst] = dev::to_cache<E>(v[t * row_stride + i]);
    }
}

unsigned grid_for(uint64_t total, int threads) {
    const uint64_t g = (total + threads - 1) / threads;
    return unsigned(g < 65535 ? g : 65535);  // grid-stride loops cover the rest
}

}  // namespace

int32_t rope(pi_bk_queue *queue, float *x, uint64_t n, uint64_t row_stride, uint32_t n_heads, uint32_t head_dim,
             uint32_t rope_dim, uint32_t pos0, float freq_base, uint32_t mode) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: rope: NULL queue");
    if (mode != PI_BK_ROPE_NORMAL && mode != PI_BK_ROPE_NEOX) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: rope: unknown mode " + std::to_string(mode));
    }
    if (rope_dim > head_dim || rope_dim % 2) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: rope: rope_dim must be even and <= head_dim");
    }
    if (uint64_t(n_heads) * head_dim > row_stride && n > 1) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: rope: row_stride smaller than n_heads * head_dim");
    }
    const uint64_t total = n * n_heads * (rope_dim / 2);
    if (total == 0) return PI_BK_OK;
    if (!x) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: rope: NULL x");
    if (int32_t s = prepare(queue, 0)) return s;
    rope_kernel<<<grid_for(total, 256), 256, 0, queue->stream>>>(x, n, row_stride, n_heads, head_dim, rope_dim, pos0,
                                                                 freq_base, mode);
    return check_launch("rope");
}

int32_t kv_store(pi_bk_queue *queue, void *k_cache, void *v_cache, uint32_t kv_type, uint32_t kv_dim, uint32_t pos0,
                 uint64_t n, const float *k, const float *v, uint64_t row_stride) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: kv_store: NULL queue");
    if (kv_type != PI_BK_KV_F16 && kv_type != PI_BK_KV_F32) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: kv_store: unknown cache type " + std::to_string(kv_type));
    }
    const uint64_t total = n * kv_dim;
    if (total == 0) return PI_BK_OK;
    if (!k_cache || !v_cache || !k || !v) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: kv_store: NULL pointer");
    if (n > 1 && row_stride < kv_dim) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: kv_store: row_stride < kv_dim");
    if (int32_t s = prepare(queue, 0)) return s;
    if (kv_type == PI_BK_KV_F16) {
        kv_store_kernel<__half><<<grid_for(total, 256), 256, 0, queue->stream>>>(
            static_cast<__half *>(k_cache), static_cast<__half *>(v_cache), kv_dim, pos0, n, k, v, row_stride);
    } else {
        kv_store_kernel<float><<<grid_for(total, 256), 256, 0, queue->stream>>>(
            static_cast<float *>(k_cache), static_cast<float *>(v_cache), kv_dim, pos0, n, k, v, row_stride);
    }
    return check_launch("kv_store");
}

}  // namespace pi::cuda
