// Causal attention over the KV cache: one 256-thread block per (query row, head). The 8 warps take tiles of 32
// positions in turn; in a tile, lane j scores position p0 + j with the whole head (16-byte K loads when head_dim %
// 8 == 0, so each lane has many loads in flight: the first version, one position per warp step with a shuffle sum
// per position, was latency-bound at ~100 us for 512 positions x 32 heads on the H100). An online softmax (running
// max, running sum, rescaled accumulator) per warp keeps the state independent of the context length; for V the
// lanes split head_dim and take the tile's 32 rows in order. The warps' states are merged in warp order at the end.
// Traffic: the head's K and V rows for positions [0, pos0 + t] once per query head (query heads sharing a KV head
// read the same rows, mostly from L2).
#include <cuda_fp16.h>

#include "backends/cuda/attention_short.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / dev::kWarp;

template <typename E>
__device__ __forceinline__ float from_cache(const E *p) {
    if constexpr (sizeof(E) == 2) {
        return __half2float(*reinterpret_cast<const __half *>(p));
    } else {
        return *p;
    }
}

// q . k for one cache row; q in shared memory (every lane reads the same q[d]: a broadcast).
template <typename E, bool VEC>
__device__ __forceinline__ float score(const float *q_s, const E *kr, uint32_t head_dim) {
    float s = 0.0f;
    if constexpr (VEC) {
        for (uint32_t d = 0; d < head_dim; d += 8) {
            float k[8];
            if constexpr (sizeof(E) == 2) {
                const uint4 v = *reinterpret_cast<const uint4 *>(kr + d);
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
                    k[2 * i] = f.x, k[2 * i + 1] = f.y;
                }
            } else {
                const float4 a = *reinterpret_cast<const float4 *>(kr + d), b = *reinterpret_cast<const float4 *>(kr + d + 4);
                k[0] = a.x, k[1] = a.y, k[2] = a.z, k[3] = a.w, k[4] = b.x, k[5] = b.y, k[6] = b.z, k[7] = b.w;
            }
#pragma unroll
            for (int i = 0; i < 8; ++i) s += q_s[d + i] * k[i];
        }
    } else {
        for (uint32_t d = 0; d < head_dim; ++d) s += q_s[d] * from_cache(kr + d);
    }
    return s;
}

template <typename E, bool VEC>
__global__ void __launch_bounds__(kWarps *dev::kWarp)
    attention_kernel(const float *__restrict__ q, const E *__restrict__ k_cache, const E *__restrict__ v_cache,
                     uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, float scale,
                     float *__restrict__ out) {
    __shared__ float q_s[kMaxHeadDim];
    __shared__ float m_s[kWarps], l_s[kWarps];
    __shared__ float acc_s[kWarps][kMaxHeadDim];
    const uint32_t h = blockIdx.x % n_head;
    const uint64_t t = blockIdx.x / n_head;
    const uint32_t kvh = h / (n_head / n_head_kv);
    const uint64_t kv_dim = uint64_t(n_head_kv) * head_dim;
    const uint32_t n_pos = pos0 + uint32_t(t) + 1;
    const int warp = threadIdx.x / dev::kWarp, lane = threadIdx.x % dev::kWarp;
    const float *qh = q + t * uint64_t(n_head) * head_dim + uint64_t(h) * head_dim;
    for (uint32_t d = threadIdx.x; d < head_dim; d += kWarps * dev::kWarp) q_s[d] = qh[d];
    __syncthreads();

    const E *k_head = k_cache + uint64_t(kvh) * head_dim;
    const E *v_head = v_cache + uint64_t(kvh) * head_dim;
    float acc[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (uint32_t p0 = uint32_t(warp) * dev::kWarp; p0 < n_pos; p0 += kWarps * dev::kWarp) {
        const uint32_t p = p0 + lane;
        const bool valid = p < n_pos;
        const float s = valid ? score<E, VEC>(q_s, k_head + p * kv_dim, head_dim) * scale : -INFINITY;
        float tile_max = s;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, off));
        const float m_new = fmaxf(m, tile_max);  // finite: lane 0 of a tile is always a valid position
        const float corr = expf(m - m_new);       // 0 on the first tile (m = -inf)
        const float e = valid ? expf(s - m_new) : 0.0f;
        l = l * corr + dev::warp_sum(e);
        m = m_new;
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) acc[i] *= corr;
        const uint32_t rows = min(uint32_t(dev::kWarp), n_pos - p0);
        for (uint32_t j = 0; j < rows; ++j) {
            const float ej = __shfl_sync(0xffffffffu, e, int(j));
            const E *vr = v_head + (p0 + j) * kv_dim;
#pragma unroll
            for (int i = 0; i < kPerLane; ++i) {
                const uint32_t d = lane + i * dev::kWarp;
                if (d < head_dim) acc[i] += ej * from_cache(vr + d);
            }
        }
    }
    if (lane == 0) m_s[warp] = m, l_s[warp] = l;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
        const uint32_t d = lane + i * dev::kWarp;
        if (d < head_dim) acc_s[warp][d] = acc[i];
    }
    __syncthreads();
    float m_all = -INFINITY;
    for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, m_s[w]);
    float l_all = 0.0f, f[kWarps];
    for (int w = 0; w < kWarps; ++w) {
        f[w] = l_s[w] > 0.0f ? expf(m_s[w] - m_all) : 0.0f;  // a warp that saw no position has l = 0
        l_all += l_s[w] * f[w];
    }
    float *oh = out + t * uint64_t(n_head) * head_dim + uint64_t(h) * head_dim;
    for (uint32_t d = threadIdx.x; d < head_dim; d += kWarps * dev::kWarp) {
        float o = 0.0f;
        for (int w = 0; w < kWarps; ++w) o += acc_s[w][d] * f[w];
        oh[d] = o / l_all;
    }
}

template <typename E>
void launch(cudaStream_t stream, unsigned grid, bool vec, const float *q, const void *k, const void *v,
            uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, float scale, float *out) {
    const E *kc = static_cast<const E *>(k), *vc = static_cast<const E *>(v);
    if (vec) {
        attention_kernel<E, true><<<grid, kWarps * dev::kWarp, 0, stream>>>(q, kc, vc, n_head, n_head_kv, head_dim,
                                                                            pos0, scale, out);
    } else {
        attention_kernel<E, false><<<grid, kWarps * dev::kWarp, 0, stream>>>(q, kc, vc, n_head, n_head_kv, head_dim,
                                                                             pos0, scale, out);
    }
}

}  // namespace

int32_t attention(pi_bk_queue *queue, const float *q, const void *k_cache, const void *v_cache, uint32_t kv_type,
                  uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, uint64_t n, float scale,
                  float *out) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention: NULL queue");
    if (kv_type != PI_BK_KV_F16 && kv_type != PI_BK_KV_F32) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention: unknown cache type " + std::to_string(kv_type));
    }
    if (n_head == 0 || n_head_kv == 0 || n_head % n_head_kv) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention: n_head must be a positive multiple of n_head_kv");
    }
    if (head_dim == 0 || head_dim > kMaxHeadDim) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: attention: head_dim " + std::to_string(head_dim) +
                                               " outside [1, " + std::to_string(kMaxHeadDim) + "]");
    }
    if (n == 0) return PI_BK_OK;
    if (!q || !k_cache || !v_cache || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention: NULL pointer");
    if (n * n_head > INT32_MAX) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: attention: too many query rows");
    if (int32_t s = prepare(queue, 0)) return s;
    // Prompt chunks: the tiled kernel (attention_prompt.cu), a K/V row read once per 64 query rows.
    if (attention_prompt_serves(kv_type, n_head_kv, head_dim, n, q, k_cache, v_cache)) {
        return attention_prompt(queue->stream, q, k_cache, v_cache, kv_type, n_head, n_head_kv, head_dim, pos0, n,
                                scale, out);
    }
    const unsigned grid = unsigned(n * n_head);
    // Contexts up to kShortMaxPositions with 4-value aligned rows: the three-phase kernel (attention_short.cuh).
    const uint64_t align = kv_type == PI_BK_KV_F16 ? 8 : 16;
    if (pos0 + n <= short_attention::kShortMaxPositions && head_dim % 4 == 0 && n_head_kv * head_dim % 4 == 0 &&
        reinterpret_cast<uintptr_t>(k_cache) % align == 0 && reinterpret_cast<uintptr_t>(v_cache) % align == 0 &&
        reinterpret_cast<uintptr_t>(q) % 16 == 0) {
        using short_attention::attention_short_kernel;
        constexpr int T = short_attention::kThreads;
        if (kv_type == PI_BK_KV_F16) {
            attention_short_kernel<__half><<<grid, T, 0, queue->stream>>>(
                q, static_cast<const __half *>(k_cache), static_cast<const __half *>(v_cache), n_head, n_head_kv,
                head_dim, pos0, scale, out);
        } else {
            attention_short_kernel<float><<<grid, T, 0, queue->stream>>>(
                q, static_cast<const float *>(k_cache), static_cast<const float *>(v_cache), n_head, n_head_kv,
                head_dim, pos0, scale, out);
        }
        return check_launch("attention");
    }
    // 16-byte K loads need 16-byte aligned rows: head_dim % 8 == 0 and aligned cache bases.
    const bool vec = head_dim % 8 == 0 && reinterpret_cast<uintptr_t>(k_cache) % 16 == 0;
    if (kv_type == PI_BK_KV_F16) {
        launch<__half>(queue->stream, grid, vec, q, k_cache, v_cache, n_head, n_head_kv, head_dim, pos0, scale, out);
    } else {
        launch<float>(queue->stream, grid, vec, q, k_cache, v_cache, n_head, n_head_kv, head_dim, pos0, scale, out);
    }
    return check_launch("attention");
}

}  // namespace pi::cuda
