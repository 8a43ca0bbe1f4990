// The activation predictor of one token (backends/backend.h `predict`): t = relu(fc1 . h), s = fc2 . t, then the
// neurons with s >= threshold compacted in ascending order into `list` (and `other`), counts left in device memory.
//
// Launches: [quantize h] + GEMV fc1 (relu fused) + [quantize t] + GEMV fc2 + one compaction block; the bracketed
// ones only for Q8_0/Q4_0 predictors. The GEMVs read fc1 and fc2 once (the step's traffic); the compaction reads
// the n_ff scores (44 KB for n_ff = 11008) in one 1024-thread block: a block-wide prefix scan over per-thread runs
// keeps the order without atomics, and one block is enough for so little data (see compact_kernel).
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/dependent_launch.cuh"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kCompactThreads = 1024;
constexpr int kCompactWarps = kCompactThreads / dev::kWarp;

// Inclusive prefix sum over the block of one value per thread (warp shuffles, then the warps' totals); returns the
// thread's inclusive sum and sets *total. Fixed order, no atomics.
__device__ uint32_t block_inclusive_scan(uint32_t v, uint32_t *warp_totals, uint32_t *total) {
    const int warp = threadIdx.x / dev::kWarp, lane = threadIdx.x % dev::kWarp;
#pragma unroll
    for (int off = 1; off < dev::kWarp; off <<= 1) {
        const uint32_t u = __shfl_up_sync(0xffffffffu, v, off);
        if (lane >= off) v += u;
    }
    if (lane == dev::kWarp - 1) warp_totals[warp] = v;
    __syncthreads();
    uint32_t before = 0, all = 0;
#pragma unroll
    for (int w = 0; w < kCompactWarps; ++w) {
        const uint32_t t = warp_totals[w];
        before += w < warp ? t : 0;
        all += t;
    }
    *total = all;
    return before + v;
}

// Each thread owns a contiguous run of ceil(n / 1024) neurons: it counts its active ones (loads issued together),
// one block scan gives every thread its output offsets, and a second pass over its run (now in L1) writes them.
// Thread order = neuron order, so the lists come out ascending. (The first version walked the scores 1024 at a time
// with two barriers per round: 11 rounds for n_ff = 11008, ~20 us per token and layer on the H100.)
__global__ void __launch_bounds__(kCompactThreads)
    compact_kernel(const float *__restrict__ s, uint32_t n, float threshold, const int32_t *__restrict__ slot,
                   int32_t *__restrict__ list, uint32_t *__restrict__ n_list, int32_t *__restrict__ other,
                   uint32_t *__restrict__ n_other) {
    __shared__ uint32_t totals_list[kCompactWarps], totals_other[kCompactWarps];
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh)
    const uint32_t run = (n + kCompactThreads - 1) / kCompactThreads;
    const uint32_t begin = min(n, threadIdx.x * run), end = min(n, begin + run);
    uint32_t c_list = 0, c_other = 0;
#pragma unroll 4
    for (uint32_t i = begin; i < end; ++i) {
        if (s[i] >= threshold) {  // a NaN score is never active
            const bool hot = !slot || slot[i] >= 0;
            c_list += hot;
            c_other += !hot;
        }
    }
    uint32_t all_list = 0, all_other = 0;
    uint32_t o_list = block_inclusive_scan(c_list, totals_list, &all_list) - c_list;
    uint32_t o_other = block_inclusive_scan(c_other, totals_other, &all_other) - c_other;
    for (uint32_t i = begin; i < end; ++i) {
        if (!(s[i] >= threshold)) continue;
        const int32_t sl = slot ? slot[i] : 0;
        if (sl >= 0) list[o_list++] = slot ? sl : int32_t(i);
        else other[o_other++] = int32_t(i);
    }
    if (threadIdx.x == 0) {
        *n_list = all_list;
        if (n_other) *n_other = all_other;
    }
}

size_t round256(size_t b) { return (b + 255) & ~size_t(255); }

}  // namespace

int32_t predict(pi_bk_queue *queue, const pi_bk_matrix *fc1, const pi_bk_matrix *fc2, const float *h,
                float threshold, const int32_t *slot, int32_t *list, uint32_t *n_list, int32_t *other,
                uint32_t *n_other, float *scores) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: predict: NULL queue");
    if (int32_t s = check_matrix(fc1, "predict fc1")) return s;
    if (int32_t s = check_matrix(fc2, "predict fc2")) return s;
    if (fc2->n_cols != fc1->n_rows) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: predict: fc2 has " + std::to_string(fc2->n_cols) +
                                                    " columns but fc1 has " + std::to_string(fc1->n_rows) + " rows");
    }
    if (threshold != threshold) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: predict: the threshold is NaN");
    if (!h || !list || !n_list) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: predict: NULL h, list or n_list");
    if (slot && (!other || !n_other)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: predict: slot given without other and n_other");
    }
    const size_t n_embd = fc1->n_cols, n_pred = fc1->n_rows, n_ff = fc2->n_rows;
    const size_t q_h = is_quantized(fc1->type) ? q8_bytes(1, n_embd) : 0;
    const size_t q_t = is_quantized(fc2->type) ? q8_bytes(1, n_pred) : 0;
    const size_t t_bytes = round256(n_pred * 4), s_bytes = scores ? 0 : round256(n_ff * 4);
    if (int32_t s = prepare(queue, q_h + t_bytes + q_t + s_bytes)) return s;
    auto *ws = static_cast<uint8_t *>(queue->workspace);
    auto *h_q = reinterpret_cast<int8_t *>(ws);
    auto *h_d = reinterpret_cast<float *>(ws + round256(n_embd));
    auto *t = reinterpret_cast<float *>(ws + q_h);
    auto *t_q = reinterpret_cast<int8_t *>(ws + q_h + t_bytes);
    auto *t_d = reinterpret_cast<float *>(ws + q_h + t_bytes + round256(n_pred));
    float *s = scores ? scores : reinterpret_cast<float *>(ws + q_h + t_bytes + q_t);

    if (q_h) {
        if (int32_t st = quantize_q8(queue->stream, h, 1, n_embd, h_q, h_d)) return st;
    }
    if (int32_t st = gemv(queue->stream, fc1, h, h_q, h_d, 1, GemvOut::relu, t)) return st;
    if (q_t) {
        if (int32_t st = quantize_q8(queue->stream, t, 1, n_pred, t_q, t_d)) return st;
    }
    if (int32_t st = gemv(queue->stream, fc2, t, t_q, t_d, 1, GemvOut::store, s)) return st;
    launch_dependent(compact_kernel, 1, kCompactThreads, 0, queue->stream, s, uint32_t(n_ff), threshold, slot, list,
                     n_list, other, n_other);
    return check_launch("predict compaction");
}

}  // namespace pi::cuda
