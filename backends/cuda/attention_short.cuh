// Attention of one query row and head over a context of at most kShortMaxPositions cached rows (decode steps and
// prompts of ordinary length), in three latency-bound phases that keep many loads in flight: the scores of all
// positions into shared memory (a warp per group of 4 rows, each lane 4 consecutive dimensions of each row: 8- or
// 16-byte loads, then a butterfly sum per row), the softmax over them (block max and sum in a fixed order), and
// out = p . V (each warp a slice of positions, 4 rows per step, lanes over dimensions; the warps' sums combined in
// warp order). The online-softmax kernel of attention.cu remains for longer contexts: it keeps no per-position
// state. Included by the attention kernels (attention.cu, attention_decode.cu, attention_prompt.cu).
#pragma once

#include <cuda_fp16.h>

#include "backends/cuda/weight_access.cuh"

namespace pi::cuda::short_attention {

constexpr int kWarps = 16;  // 512 threads: 64 rows of a context in flight per step
constexpr int kThreads = kWarps * dev::kWarp;
constexpr uint32_t kShortMaxPositions = 2048;
constexpr int kMaxChunks = 2;  // head_dim <= 256 = 2 chunks of 128 (32 lanes x 4 dimensions)
constexpr int kRowsPerStep = 4;

// Four consecutive values of a cache row as floats (p: 4-element aligned).
template <typename E>
__device__ __forceinline__ float4 load4(const E *p) {
    if constexpr (sizeof(E) == 2) {
        const uint2 v = *reinterpret_cast<const uint2 *>(p);
        const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&v.x));
        const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&v.y));
        return make_float4(a.x, a.y, b.x, b.y);
    } else {
        return *reinterpret_cast<const float4 *>(p);
    }
}

// One query head qh (16-byte aligned) over n_pos cache rows of its KV head (k_head, v_head: rows kv_dim apart) into
// oh; the whole block takes part. k_last/v_last != NULL: the last position's key and value rows are read from there
// (a decode step's own row, already rounded to the cache type) instead of the cache.
template <typename E>
__device__ __forceinline__ void attend_short(const float *qh, const E *__restrict__ k_head,
                                             const E *__restrict__ v_head, uint64_t kv_dim, uint32_t head_dim,
                                             uint32_t n_pos, float scale, const float *k_last, const float *v_last,
                                             float *__restrict__ oh) {
    __shared__ float p_s[kShortMaxPositions];
    __shared__ float acc_s[kWarps][kMaxChunks * 128];
    __shared__ float red_s[kWarps];
    const int warp = threadIdx.x / dev::kWarp, lane = threadIdx.x % dev::kWarp;
    const int n_chunks = int((head_dim + 127) / 128);
    const uint32_t last = k_last ? n_pos - 1 : n_pos;  // positions from k_last/v_last, not the cache

    // Phase 1: scores.
    float4 qv[kMaxChunks];
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) {
        const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
        qv[c] = c < n_chunks && d < head_dim ? *reinterpret_cast<const float4 *>(qh + d) : make_float4(0, 0, 0, 0);
    }
    for (uint32_t p0 = uint32_t(warp) * kRowsPerStep; p0 < n_pos; p0 += kWarps * kRowsPerStep) {
        float s[kRowsPerStep];
#pragma unroll
        for (int r = 0; r < kRowsPerStep; ++r) {
            s[r] = 0.0f;
            const uint32_t p = p0 + uint32_t(r);
            if (p >= n_pos) continue;
#pragma unroll
            for (int c = 0; c < kMaxChunks; ++c) {
                const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
                if (c >= n_chunks || d >= head_dim) continue;
                const float4 k = p == last ? *reinterpret_cast<const float4 *>(k_last + d)
                                           : load4(k_head + uint64_t(p) * kv_dim + d);
                s[r] += qv[c].x * k.x + qv[c].y * k.y + qv[c].z * k.z + qv[c].w * k.w;
            }
        }
#pragma unroll
        for (int r = 0; r < kRowsPerStep; ++r) {
            const float v = dev::warp_sum(s[r]);
            if (lane == 0 && p0 + uint32_t(r) < n_pos) p_s[p0 + r] = v * scale;
        }
    }
    __syncthreads();

    // Phase 2: softmax weights (unnormalized) and their sum.
    float m = -INFINITY;
    for (uint32_t p = threadIdx.x; p < n_pos; p += kThreads) m = fmaxf(m, p_s[p]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    if (lane == 0) red_s[warp] = m;
    __syncthreads();
    m = red_s[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) m = fmaxf(m, red_s[w]);
    float l = 0.0f;
    for (uint32_t p = threadIdx.x; p < n_pos; p += kThreads) {
        const float e = expf(p_s[p] - m);
        p_s[p] = e;
        l += e;
    }
    l = dev::warp_sum(l);
    __syncthreads();  // every thread has read red_s (the max) before it is reused for the sums
    if (lane == 0) red_s[warp] = l;
    __syncthreads();
    l = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) l += red_s[w];

    // Phase 3: out = p . V, warps over positions, lanes over dimensions.
    float4 acc[kMaxChunks];
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) acc[c] = make_float4(0, 0, 0, 0);
    for (uint32_t p0 = uint32_t(warp) * kRowsPerStep; p0 < n_pos; p0 += kWarps * kRowsPerStep) {
#pragma unroll
        for (int r = 0; r < kRowsPerStep; ++r) {
            const uint32_t p = p0 + uint32_t(r);
            if (p >= n_pos) continue;
            const float e = p_s[p];
#pragma unroll
            for (int c = 0; c < kMaxChunks; ++c) {
                const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
                if (c >= n_chunks || d >= head_dim) continue;
                const float4 v = p == last ? *reinterpret_cast<const float4 *>(v_last + d)
                                           : load4(v_head + uint64_t(p) * kv_dim + d);
                acc[c].x += e * v.x, acc[c].y += e * v.y, acc[c].z += e * v.z, acc[c].w += e * v.w;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < kMaxChunks; ++c) {
        const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
        if (c < n_chunks && d < head_dim) *reinterpret_cast<float4 *>(&acc_s[warp][d]) = acc[c];
    }
    __syncthreads();
    const float inv = 1.0f / l;
    for (uint32_t d = threadIdx.x; d < head_dim; d += kThreads) {
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) o += acc_s[w][d];
        oh[d] = o * inv;
    }
}

template <typename E>
__global__ void __launch_bounds__(kThreads)
    attention_short_kernel(const float *__restrict__ q, const E *__restrict__ k_cache, const E *__restrict__ v_cache,
                           uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, float scale,
                           float *__restrict__ out) {
    const uint32_t h = blockIdx.x % n_head;
    const uint64_t t = blockIdx.x / n_head;
    const uint32_t kvh = h / (n_head / n_head_kv);
    const uint64_t kv_dim = uint64_t(n_head_kv) * head_dim;
    const uint64_t at = t * uint64_t(n_head) * head_dim + uint64_t(h) * head_dim;
    attend_short<E>(q + at, k_cache + uint64_t(kvh) * head_dim, v_cache + uint64_t(kvh) * head_dim, kv_dim, head_dim,
                    pos0 + uint32_t(t) + 1, scale, nullptr, nullptr, out + at);
}

}  // namespace pi::cuda::short_attention
