// attention_decode: one decode token's RoPE, KV store and attention in one launch (instead of three), any context
// length the cache holds.
//
// The positions are cut into chunks of kChunk (longer ones, in steps of 64, where a head would have more than
// kMaxChunksPerHead); a 512-thread block takes one (query head, chunk). It rotates its query
// head and its KV head's key, rounds key and value to the cache type (the block of the chunk holding the position and
// of the KV group's first head stores them there), then attends over its chunk with an online softmax per warp: each
// pass a warp loads the K and the V rows of its 4 positions together (one trip to memory per pass, not one for the
// scores and one for the values), keeps a running max, sum and weighted sum, and the block merges its 16 warps in
// warp order. The position itself is taken from the block's own rounded rows (never from the cache, which another
// block may still be writing). A context of one chunk is one block per head, which writes the head's output. Longer
// ones spread a head over several SMs -- before, one block per head walked all positions, 22 us at 512 positions and
// 76 us at 2048 on the H100, where the bytes take a few: each chunk's block writes its (max, sum, weighted sum) to the
// workspace and counts itself done on the head's counter (queue->head_counters, zeroed at creation), and the block
// that completes the count merges the chunks in chunk order (deterministic) and sets the counter back to zero.
//
// The position may come from device memory (pos_word), so a recorded step can be relaunched unchanged: the grid is
// then sized for the cache's capacity and the chunks past the position return at once. The rotation and the rounding
// are rope_math.cuh's, as rope_kv.cu's separate operations use them.
//
// Few blocks are busy at short contexts and they are latency-bound, so HBM idles while they run. When the caller
// names the next operation's weights (next_weights: the output projection), extra blocks of the same launch read the
// first of them through L2 meanwhile, and the product that follows finds them there.
//
// Launched as a dependent kernel (dependent_launch.cuh): its blocks may start while the q|k|v product still runs;
// until its wait they only prefetch their chunk's cache rows into L2 (rows earlier steps wrote).
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/attention_short.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/dependent_launch.cuh"
#include "backends/cuda/rope_math.cuh"

namespace pi::cuda {
namespace {

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * dev::kWarp;
constexpr int kRows = 4;              // positions a warp takes per pass
constexpr uint32_t kChunk = 128;      // positions per block (at least): two passes of the block's 64 rows
constexpr uint32_t kMaxChunksPerHead = 512;  // longer contexts take longer chunks (a multiple of 64 positions)
constexpr int kMaxHeadDim = 256;      // two chunks of 128 dimensions (32 lanes x 4 each)

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

struct Shape {
    uint32_t n_head, n_head_kv, head_dim, rope_dim, rope_mode;
    float base, scale;
    uint32_t chunk;     // positions per block
    uint32_t n_chunks;  // chunks of the grid (per head)
};

// A chunk's softmax state: max m, sum l of exp(s - m), and acc (head_dim values) = sum of exp(s - m) * v.
// In the workspace: head_dim + 2 floats per (head, chunk), rounded up to a multiple of 4.
__host__ __device__ inline uint32_t partial_floats(uint32_t head_dim) { return (head_dim + 2 + 3) / 4 * 4; }

// DC: 128-dimension chunks of a head a lane walks (1 for head_dim <= 128, else 2), so that the registers of a pass
// (K and V of 4 rows) are only those the head needs.
template <typename E, int DC>
__global__ void __launch_bounds__(kThreads)
    attention_decode_kernel(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
                            E *__restrict__ k_cache, E *__restrict__ v_cache, Shape s, uint32_t pos_arg,
                            const uint32_t *__restrict__ pos_word, float *__restrict__ out, float *partials,
                            uint32_t *counters, const uint8_t *__restrict__ warm, uint64_t warm16) {
    __shared__ __align__(16) float q_s[kMaxHeadDim], k_s[kMaxHeadDim], v_s[kMaxHeadDim];
    __shared__ __align__(16) float acc_s[kWarps][kMaxHeadDim];
    __shared__ float m_s[kWarps], l_s[kWarps], ww_s[kWarps];
    __shared__ float cw_s[kMaxChunksPerHead], inv_s;
    __shared__ bool merges;
    const uint32_t attention_blocks = s.n_head * s.n_chunks;
    if (blockIdx.x >= attention_blocks) {
        // Weights only: no wait for the producer (the attention blocks wait, so the grid still ends after it).
        warm_l2(warm, warm16, blockIdx.x - attention_blocks, gridDim.x - attention_blocks, nullptr);
        return;
    }
    // pos_word is written by a copy before the step's first kernel, and the cache rows before pos by earlier steps:
    // both may be read before the wait for q, k and v (dependent_launch.cuh).
    const uint32_t pos = pos_word ? *pos_word : pos_arg, n_pos = pos + 1;
    const uint32_t h = blockIdx.x / s.n_chunks, chunk = blockIdx.x % s.n_chunks;
    const uint32_t c0 = chunk * s.chunk, c1 = min(n_pos, c0 + s.chunk);
    const uint32_t hd = s.head_dim, group = s.n_head / s.n_head_kv, kvh = h / group;
    const uint64_t kv_dim = uint64_t(s.n_head_kv) * hd;
    const int warp = threadIdx.x / dev::kWarp, lane = threadIdx.x % dev::kWarp;
    if (c0 < c1) {  // the chunk's key and value rows into L2 while the q|k|v product finishes
        const uint32_t lines = (hd * uint32_t(sizeof(E)) + 127) / 128;
        for (uint32_t i = threadIdx.x; i < 2 * (c1 - c0) * lines; i += blockDim.x) {
            const uint32_t row = i / lines, p = c0 + row % (c1 - c0);
            const E *base = row < c1 - c0 ? k_cache : v_cache;
            dev::prefetch_l2_line(base + uint64_t(p) * kv_dim + uint64_t(kvh) * hd + (i % lines) * (128 / sizeof(E)));
        }
    }
    dev::start_after_producer();
    if (c0 >= n_pos) return;  // past the position (a grid sized for the cache's capacity)
    const uint32_t used_chunks = (n_pos + s.chunk - 1) / s.chunk;
    const bool last_chunk = chunk + 1 == used_chunks;

    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        q_s[d] = q[uint64_t(h) * hd + d];
        k_s[d] = k[uint64_t(kvh) * hd + d];
        v_s[d] = v[uint64_t(kvh) * hd + d];
    }
    __syncthreads();
    if (s.rope_dim > 0) {
        rotate(q_s, s.rope_dim, s.rope_mode, s.base, pos);
        if (last_chunk) rotate(k_s, s.rope_dim, s.rope_mode, s.base, pos);
        __syncthreads();
    }
    if (last_chunk) {
        const bool writer = h % group == 0;
        const uint64_t at = uint64_t(pos) * kv_dim + uint64_t(kvh) * hd;
        for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
            const E kr = dev::to_cache<E>(k_s[d]), vr = dev::to_cache<E>(v_s[d]);
            k_s[d] = cache_value(kr);
            v_s[d] = cache_value(vr);
            if (writer) {
                k_cache[at + d] = kr;
                v_cache[at + d] = vr;
            }
        }
        __syncthreads();
    }

    // Each warp's online softmax over its rows of the chunk.
        float4 qv[DC];
#pragma unroll
    for (int c = 0; c < DC; ++c) {
        const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
        qv[c] = d < hd ? *reinterpret_cast<const float4 *>(q_s + d) : make_float4(0, 0, 0, 0);
    }
    const E *k_head = k_cache + uint64_t(kvh) * hd, *v_head = v_cache + uint64_t(kvh) * hd;
    float m = -INFINITY, l = 0.0f;
    float4 acc[DC];
#pragma unroll
    for (int c = 0; c < DC; ++c) acc[c] = make_float4(0, 0, 0, 0);
    for (uint32_t p0 = c0 + uint32_t(warp) * kRows; p0 < c1; p0 += kWarps * kRows) {
        float4 kr[kRows][DC], vr[kRows][DC];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const uint32_t p = p0 + uint32_t(r);
#pragma unroll
            for (int c = 0; c < DC; ++c) {
                const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
                const bool in = p < c1 && d < hd;
                if (in && p == pos) {
                    kr[r][c] = *reinterpret_cast<const float4 *>(k_s + d);
                    vr[r][c] = *reinterpret_cast<const float4 *>(v_s + d);
                } else if (in) {
                    kr[r][c] = short_attention::load4(k_head + uint64_t(p) * kv_dim + d);
                    vr[r][c] = short_attention::load4(v_head + uint64_t(p) * kv_dim + d);
                } else {
                    kr[r][c] = vr[r][c] = make_float4(0, 0, 0, 0);
                }
            }
        }
        float sc[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            float d = 0.0f;
#pragma unroll
            for (int c = 0; c < DC; ++c) {
                d += qv[c].x * kr[r][c].x + qv[c].y * kr[r][c].y + qv[c].z * kr[r][c].z + qv[c].w * kr[r][c].w;
            }
            sc[r] = p0 + uint32_t(r) < c1 ? dev::warp_sum(d) * s.scale : -INFINITY;
        }
        float m_new = m;
#pragma unroll
        for (int r = 0; r < kRows; ++r) m_new = fmaxf(m_new, sc[r]);
        const float keep = expf(m - m_new);  // 0 on the first pass (m = -inf); row p0 is always in the chunk
        l *= keep;
#pragma unroll
        for (int c = 0; c < DC; ++c) acc[c].x *= keep, acc[c].y *= keep, acc[c].z *= keep, acc[c].w *= keep;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const float e = expf(sc[r] - m_new);  // 0 for rows past the chunk
            l += e;
#pragma unroll
            for (int c = 0; c < DC; ++c) {
                acc[c].x += e * vr[r][c].x, acc[c].y += e * vr[r][c].y, acc[c].z += e * vr[r][c].z,
                    acc[c].w += e * vr[r][c].w;
            }
        }
        m = m_new;
    }

    // The block's state: its warps merged in warp order, each weighted by exp(m_w - max) (a warp without rows has
    // m = -inf and weight 0), the weights formed once.
    if (lane == 0) m_s[warp] = m, l_s[warp] = l;
#pragma unroll
    for (int c = 0; c < DC; ++c) {
        const uint32_t d = uint32_t(c) * 128 + uint32_t(lane) * 4;
        if (d < hd) *reinterpret_cast<float4 *>(&acc_s[warp][d]) = acc[c];
    }
    __syncthreads();
    float bm = m_s[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) bm = fmaxf(bm, m_s[w]);
    if (threadIdx.x < kWarps) ww_s[threadIdx.x] = m_s[threadIdx.x] == -INFINITY ? 0.0f : expf(m_s[threadIdx.x] - bm);
    __syncthreads();
    float bl = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) bl += l_s[w] * ww_s[w];
    const uint32_t stride = partial_floats(hd);
    float *mine = partials + (uint64_t(h) * s.n_chunks + chunk) * stride;
    float *dst = used_chunks == 1 ? out + uint64_t(h) * hd : mine + 2;  // one chunk: the output itself
    const float inv = used_chunks == 1 ? 1.0f / bl : 1.0f;
    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) o += acc_s[w][d] * ww_s[w];
        dst[d] = o * inv;
    }
    if (used_chunks == 1) return;
    if (threadIdx.x == 0) mine[0] = bm, mine[1] = bl;
    // Counted done once the state is visible device-wide; the block that completes the count merges.
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        merges = atomicAdd(&counters[h], 1u) + 1 == used_chunks;
        if (merges) counters[h] = 0;  // no other block of this launch counts head h any more
    }
    __syncthreads();
    if (!merges) return;
    __threadfence();
    // The chunks' weights exp(m_c - max) by the first warp, their sums in chunk order; then the outputs.
    const float *first = partials + uint64_t(h) * s.n_chunks * stride;
    if (warp == 0) {
        float gm = -INFINITY;
        for (uint32_t c = lane; c < used_chunks; c += dev::kWarp) gm = fmaxf(gm, __ldcg(first + c * stride));
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) gm = fmaxf(gm, __shfl_xor_sync(0xffffffffu, gm, off));
        for (uint32_t c = lane; c < used_chunks; c += dev::kWarp) cw_s[c] = expf(__ldcg(first + c * stride) - gm);
        __syncwarp();
        if (lane == 0) {
            float gl = 0.0f;
            for (uint32_t c = 0; c < used_chunks; ++c) gl += __ldcg(first + c * stride + 1) * cw_s[c];
            inv_s = 1.0f / gl;
        }
    }
    __syncthreads();
    for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        for (uint32_t c = 0; c < used_chunks; ++c) o += __ldcg(first + c * stride + 2 + d) * cw_s[c];
        out[uint64_t(h) * hd + d] = o * inv_s;
    }
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
    if (a->max_positions == 0 || (!pos_word && pos >= a->max_positions)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: attention_decode: pos " + std::to_string(pos) +
                                                    " beyond the cache's " + std::to_string(a->max_positions));
    }
    // A lane takes 4 dimensions of a 128-dimension chunk, two chunks at most; a block per head at least.
    if (a->head_dim % 4 || a->head_dim > uint32_t(kMaxHeadDim) || a->n_head > 65535) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: attention_decode: head size " + std::to_string(a->head_dim) +
                                               " or " + std::to_string(a->n_head) +
                                               " heads (use the three operations)");
    }
    // Chunks: for the cache's capacity when the position is read on the device (the grid must serve every later
    // position), else for this position; one when the heads outnumber the queue's counters (a long walk per head).
    // Chunks of kChunk positions, longer (a multiple of 64) where that would make more than kMaxChunksPerHead.
    const uint64_t reach = pos_word ? a->max_positions : uint64_t(pos) + 1, span = uint64_t(kMaxChunksPerHead) * 64;
    const bool spread = a->n_head <= kHeadCounters;
    const uint64_t chunk = spread ? std::max<uint64_t>(kChunk, (a->max_positions + span - 1) / span * 64)
                                  : a->max_positions;
    const uint32_t n_chunks = uint32_t((reach + chunk - 1) / chunk);
    // The workspace holds the chunks' states, sized for the cache's capacity whatever the position, so that a step
    // recorded later (which may not grow it) finds it large enough.
    const uint64_t capacity_chunks = (a->max_positions + chunk - 1) / chunk;
    const size_t partial_bytes =
        capacity_chunks > 1 ? size_t(a->n_head) * capacity_chunks * partial_floats(a->head_dim) * 4 : 0;
    if (int32_t s = prepare(queue, partial_bytes)) return s;
    // Warming: one more block per SM, 16-byte aligned weights only (the loads are 16 bytes wide).
    const auto *warm = static_cast<const uint8_t *>(a->next_weights);
    const uint64_t warm16 = warm && reinterpret_cast<uintptr_t>(warm) % 16 == 0
                                ? std::min(a->next_weights_bytes, warm_limit_bytes()) / 16
                                : 0;
    const Shape shape{a->n_head,         a->n_head_kv, a->head_dim, a->rope_dim, a->rope_mode,
                      a->rope_freq_base, a->scale,     uint32_t(chunk), n_chunks};
    const unsigned grid = unsigned(uint64_t(a->n_head) * n_chunks + (warm16 ? unsigned(queue->sm_count) : 0u));
    auto *partials = static_cast<float *>(queue->workspace);
    const bool wide = a->head_dim > 128;
    if (a->kv_type == PI_BK_KV_F16) {
        auto *kc = static_cast<__half *>(a->k_cache), *vc = static_cast<__half *>(a->v_cache);
        auto kernel = wide ? attention_decode_kernel<__half, 2> : attention_decode_kernel<__half, 1>;
        launch_dependent(kernel, grid, kThreads, 0, queue->stream, q, k, v, kc, vc, shape, pos, pos_word, out, partials,
                         queue->head_counters, warm, warm16);
    } else {
        auto *kc = static_cast<float *>(a->k_cache), *vc = static_cast<float *>(a->v_cache);
        auto kernel = wide ? attention_decode_kernel<float, 2> : attention_decode_kernel<float, 1>;
        launch_dependent(kernel, grid, kThreads, 0, queue->stream, q, k, v, kc, vc, shape, pos, pos_word, out, partials,
                         queue->head_counters, warm, warm16);
    }
    return check_launch("attention_decode");
}

}  // namespace pi::cuda
