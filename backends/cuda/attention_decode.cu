// attention_decode: one decode token's RoPE, KV store and attention in one kernel (instead of three launches), one
// 512-thread block per query head. Each block rotates its query head and its KV head's key (the blocks of a KV
// group compute the same key bits), rounds key and value to the cache type, and the group's first block stores them
// at the position; the attention then takes the last position from the block's own rounded rows (never from the
// cache, which another block may still be writing), the others from the cache -- the values the unfused sequence
// reads. The position may come from device memory (pos_word), so a recorded step can be relaunched unchanged.
// The rotation and the rounding are rope_math.cuh's, as rope_kv.cu's separate operations use them.
//
// The attention blocks are few (one per query head: 32 of the H100's 132 SMs) and latency-bound, so HBM idles while
// they run. When the caller names the next operation's weights (next_weights: the output projection), extra blocks
// of the same launch read the first of them through L2 meanwhile, and the product that follows finds them there.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/attention_short.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/rope_math.cuh"

namespace pi::cuda {
namespace {

constexpr int kMaxHeadDim = short_attention::kMaxChunks * 128;

__device__ __forceinline__ float cache_value(float v) { return v; }
__device__ __forceinline__ float cache_value(__half v) { return __half2float(v); }

// Rotates the pairs of one head in shared memory (as rope_kernel does for one row).
__device__ __forceinline__ void rotate(float *head, uint32_t rope_dim, uint32_t mode, float base, uint32_t pos) {
    for (uint32_t i = threadIdx.x; i < rope_dim / 2; i += blockDim.x) dev::rotate_pair(head, i, rope_dim, mode, base, float(pos));
}

// Reads bytes [0, n16 * 16) of `p` through L2 with blocks [0, n_blocks) of the warming part of the grid, eight loads
// in flight per thread. The values are folded into one word that is stored only where `sink` is not NULL (callers
// pass NULL): a load whose value is never used could be dropped by the compiler.
__device__ __forceinline__ void warm_l2(const uint8_t *p, uint64_t n16, uint32_t block, uint32_t n_blocks,
                                        uint32_t *sink) {
    constexpr int kBatch = 8;
    const uint64_t stride = uint64_t(n_blocks) * blockDim.x;
    uint32_t fold = 0;
    for (uint64_t i = uint64_t(block) * blockDim.x + threadIdx.x; i < n16; i += stride * kBatch) {
        uint4 v[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const uint64_t j = i + uint64_t(b) * stride;
            v[b] = j < n16 ? dev::load_stream16(p + j * 16) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) fold ^= v[b].x ^ v[b].y ^ v[b].z ^ v[b].w;
    }
    if (sink) sink[threadIdx.x] = fold;
}

template <typename E>
__global__ void __launch_bounds__(short_attention::kThreads)
    attention_decode_kernel(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
                            E *__restrict__ k_cache, E *__restrict__ v_cache, uint32_t n_head, uint32_t n_head_kv,
                            uint32_t head_dim, uint32_t rope_dim, uint32_t rope_mode, float base, uint32_t pos_arg,
                            const uint32_t *__restrict__ pos_word, float scale, float *__restrict__ out,
                            const uint8_t *__restrict__ warm, uint64_t warm16, uint32_t *warm_sink) {
    __shared__ __align__(16) float q_s[kMaxHeadDim], k_s[kMaxHeadDim], v_s[kMaxHeadDim];
    if (blockIdx.x >= n_head) {
        warm_l2(warm, warm16, blockIdx.x - n_head, gridDim.x - n_head, warm_sink);
        return;
    }
    const uint32_t pos = pos_word ? *pos_word : pos_arg;
    const uint32_t h = blockIdx.x, group = n_head / n_head_kv, kvh = h / group;
    const uint64_t kv_dim = uint64_t(n_head_kv) * head_dim;
    for (uint32_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
        q_s[d] = q[uint64_t(h) * head_dim + d];
        k_s[d] = k[uint64_t(kvh) * head_dim + d];
        v_s[d] = v[uint64_t(kvh) * head_dim + d];
    }
    __syncthreads();
    if (rope_dim > 0) {
        rotate(q_s, rope_dim, rope_mode, base, pos);
        rotate(k_s, rope_dim, rope_mode, base, pos);
        __syncthreads();
    }
    const bool writer = h % group == 0;
    const uint64_t at = uint64_t(pos) * kv_dim + uint64_t(kvh) * head_dim;
    for (uint32_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
        const E kr = dev::to_cache<E>(k_s[d]), vr = dev::to_cache<E>(v_s[d]);
        k_s[d] = cache_value(kr);
        v_s[d] = cache_value(vr);
        if (writer) {
            k_cache[at + d] = kr;
            v_cache[at + d] = vr;
        }
    }
    __syncthreads();
    short_attention::attend_short<E>(q_s, k_cache + uint64_t(kvh) * head_dim, v_cache + uint64_t(kvh) * head_dim,
                                     kv_dim, head_dim, pos + 1, scale, k_s, v_s, out + uint64_t(h) * head_dim);
}

// The bytes of next_weights read into L2 during the attention: PI_CUDA_WARM_L2 MiB at most (0: none). Default 16
// MiB, about what HBM delivers while the attention runs (~6 us at bench contexts): on the H100 the dense decode layer
// took 157.5 us with 16, 158.9 with none and 163.7 with bench-7b's whole 32 MiB output projection (the launch then
// outlasts the attention).
uint64_t warm_limit_bytes() {
    static const uint64_t limit = [] {
        const char *v = std::getenv("PI_CUDA_WARM_L2");
        return uint64_t(v && *v ? std::strtoull(v, nullptr, 10) : 16) << 20;
    }();
    return limit;
}

}  // namespace

int32_t attention_decode(pi_bk_queue *queue, const pi_bk_decode_attention *a, const float *q, const float *k,
                         const float *v, uint32_t pos, const uint32_t *pos_word, float *out) {
    if (!queue || !a) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: NULL queue or parameters");
    if (!q || !k || !v || !out || !a->k_cache || !a->v_cache) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: NULL pointer");
    }
    if (a->kv_type != PI_BK_KV_F16 && a->kv_type != PI_BK_KV_F32) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: unknown cache type " + std::to_string(a->kv_type));
    }
    if (a->n_head == 0 || a->n_head_kv == 0 || a->n_head % a->n_head_kv) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: n_head must be a multiple of n_head_kv");
    }
    if (a->rope_dim > a->head_dim || a->rope_dim % 2 ||
        (a->rope_mode != PI_BK_ROPE_NORMAL && a->rope_mode != PI_BK_ROPE_NEOX)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: bad rope_dim or rope mode");
    }
    if (!pos_word && pos >= a->max_positions) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: pos " + std::to_string(pos) +
                                                    " beyond the cache's " + std::to_string(a->max_positions));
    }
    // The short kernel keeps every position's weight in shared memory and takes 4 dimensions per lane.
    const uint32_t limit = pos_word ? a->max_positions : pos + 1;
    if (limit > short_attention::kShortMaxPositions || a->head_dim % 4 || a->head_dim > uint32_t(kMaxHeadDim) ||
        a->n_head > 65535) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: attention_decode: more than " +
                                               std::to_string(short_attention::kShortMaxPositions) +
                                               " positions or an unsupported head size (use the three operations)");
    }
    if (int32_t s = prepare(queue, 0)) return s;
    // Warming: one more block per SM, 16-byte aligned weights only (the loads are 16 bytes wide).
    const auto *warm = static_cast<const uint8_t *>(a->next_weights);
    const uint64_t warm16 = warm && reinterpret_cast<uintptr_t>(warm) % 16 == 0
                                ? std::min(a->next_weights_bytes, warm_limit_bytes()) / 16
                                : 0;
    const unsigned grid = a->n_head + (warm16 ? unsigned(queue->sm_count) : 0u), threads = short_attention::kThreads;
    if (a->kv_type == PI_BK_KV_F16) {
        attention_decode_kernel<__half><<<grid, threads, 0, queue->stream>>>(
            q, k, v, static_cast<__half *>(a->k_cache), static_cast<__half *>(a->v_cache), a->n_head, a->n_head_kv,
            a->head_dim, a->rope_dim, a->rope_mode, a->rope_freq_base, pos, pos_word, a->scale, out, warm, warm16,
            nullptr);
    } else {
        attention_decode_kernel<float><<<grid, threads, 0, queue->stream>>>(
            q, k, v, static_cast<float *>(a->k_cache), static_cast<float *>(a->v_cache), a->n_head, a->n_head_kv,
            a->head_dim, a->rope_dim, a->rope_mode, a->rope_freq_base, pos, pos_word, a->scale, out, warm, warm16,
            nullptr);
    }
    return check_launch("attention_decode");
}

}  // namespace pi::cuda
