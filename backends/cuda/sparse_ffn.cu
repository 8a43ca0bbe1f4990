// The fused sparse FFN of one token over an index list whose length is read from device memory (no host sync):
//   y[c] += sum_j a_j * down_t[list[j]][c],  a_j = act(gate[list[j]] . x, up[list[j]] . x + up_bias[list[j]]).
//
// Launches: [quantize x] (Q8_0/Q4_0 only) + ffn_chunk_kernel + reduce_kernel.
// ffn_chunk_kernel: one 256-thread block per chunk of kChunk = 8 list entries (the grid covers the longest possible
// list; blocks past *n_list return at once). Phase 1: warp w computes entry w's gate and up dots (for ReGLU/dReLU
// the up row is not read when the gate is <= 0). Phase 2: the block walks the columns in units (8 for float rows,
// a 16-weight half block for quantized rows) and, per unit, adds a_j * down row over the chunk's entries with
// a_j != 0 (rows with a_j == 0 are not read), writing the chunk's partial sum. Memory traffic: the gate, up and
// down rows of the active neurons once, plus 4 * n_out bytes of partial per chunk written and read back (1/6 of
// the F16 row bytes at kChunk = 8).
// reduce_kernel: y[c] += the chunk partials summed in chunk order (8 chunk lanes per column, combined in a fixed
// order), so the result is deterministic.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/dependent_launch.cuh"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kChunk = 8;  // list entries per block = warps per block
constexpr int kThreads = kChunk * dev::kWarp;
constexpr int kUnitMax = 16;
constexpr int kReduceCols = 32, kReduceLanes = 16;

// The CPU's sparse-path formulas (backends/cpu/sparse_ffn.h): comparisons written so that a NaN gate or up gives
// 0 and a zero gate gives 0 even when u is inf.
__device__ __forceinline__ float activate(uint32_t act, float g, float u) {
    switch (act) {
        case PI_BK_ACT_SILU: return g / (1.0f + expf(-g)) * u;
        case PI_BK_ACT_REGLU: return g > 0.0f ? g * u : 0.0f;
        case PI_BK_ACT_DRELU: return g > 0.0f && u > 0.0f ? g * u : 0.0f;
        default: return u > 0.0f ? u : 0.0f;
    }
}

// The gate and up dots of one neuron in one pass (float types, vec layout): twice the loads in flight of two
// separate dots, for the latency-bound phase 1. Each row's sum is formed exactly as dot_float_partial forms it, so
// the values equal two separate dots. For ReGLU/dReLU this reads the up row also behind a non-positive gate (the
// activation is 0 either way): on the device the extra bytes cost less than the second round of load latency.
template <uint32_t T>
__device__ __forceinline__ void row_dot_pair(const uint8_t *gate, const uint8_t *up, uint32_t n_cols, const float *x,
                                             float &g, float &u) {
    const int lane = threadIdx.x % dev::kWarp;
    float ag = 0.0f, au = 0.0f;
#pragma unroll 4
    for (uint32_t k = lane * 8; k < n_cols; k += dev::kWarp * 8) {
        float wg[8], wu[8];
        dev::load_weight8<T>(gate, k, wg);
        dev::load_weight8<T>(up, k, wu);
        const float4 *xp = reinterpret_cast<const float4 *>(x + k);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        ag += wg[0] * a.x + wg[1] * a.y + wg[2] * a.z + wg[3] * a.w + wg[4] * b.x + wg[5] * b.y + wg[6] * b.z +
              wg[7] * b.w;
        au += wu[0] * a.x + wu[1] * a.y + wu[2] * a.z + wu[3] * a.w + wu[4] * b.x + wu[5] * b.y + wu[6] * b.z +
              wu[7] * b.w;
    }
    g = dev::warp_sum(ag);
    u = dev::warp_sum(au);
}

template <uint32_t T, bool VEC>
__device__ __forceinline__ float row_dot(const uint8_t *row, uint32_t n_cols, const float *x, const int8_t *xq,
                                         const float *xd) {
    float acc[1] = {0.0f};
    if constexpr (T == PI_BK_Q8_0 || T == PI_BK_Q4_0) {
        dev::dot_quant_partial<T, 1>(row, n_cols, xq, xd, 1, acc);
    } else {
        dev::dot_float_partial<T, VEC, 1>(row, n_cols, x, n_cols, 1, acc);
    }
    return dev::warp_sum(acc[0]);
}

// Columns per unit of phase 2.
template <uint32_t T, bool VEC>
__host__ __device__ constexpr int unit_width() {
    return (T == PI_BK_Q8_0 || T == PI_BK_Q4_0) ? 16 : (VEC ? 8 : 1);
}

// Column of value i of unit u.
template <uint32_t T, bool VEC>
__device__ __forceinline__ uint32_t unit_col(uint32_t u, int i) {
    if constexpr (T == PI_BK_Q4_0) {
        // Half h of block b holds bytes 8h..8h+7: weights 8h+i (low nibbles) and 16+8h+i (high nibbles).
        const uint32_t b = u / 2, h = u % 2;
        return b * 32 + (i < 8 ? 8 * h + i : 16 + 8 * h + (i - 8));
    } else {
        return u * unit_width<T, VEC>() + i;
    }
}

template <uint32_t T, bool VEC>
__device__ __forceinline__ void axpy_unit(const uint8_t *row, uint32_t u, float a, float (&acc)[kUnitMax]) {
    if constexpr (T == PI_BK_Q8_0) {
        const uint8_t *blk = row + size_t(u / 2) * 34;
        const float ad = a * dev::fp16_bits(dev::ld_u16(blk));  // the CPU's (a * d) * q
        const uint8_t *q = blk + 2 + 16 * (u % 2);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const uint16_t v = dev::ld_u16(q + 2 * i);
            acc[2 * i] += ad * float(int8_t(v & 0xff));
            acc[2 * i + 1] += ad * float(int8_t(v >> 8));
        }
    } else if constexpr (T == PI_BK_Q4_0) {
        const uint8_t *blk = row + size_t(u / 2) * 18;
        const float ad = a * dev::fp16_bits(dev::ld_u16(blk));
        const uint8_t *q = blk + 2 + 8 * (u % 2);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint16_t v = dev::ld_u16(q + 2 * i);
            const uint8_t b0 = v & 0xff, b1 = v >> 8;
            acc[2 * i] += ad * float((b0 & 0x0f) - 8);
            acc[2 * i + 1] += ad * float((b1 & 0x0f) - 8);
            acc[8 + 2 * i] += ad * float((b0 >> 4) - 8);
            acc[8 + 2 * i + 1] += ad * float((b1 >> 4) - 8);
        }
    } else if constexpr (VEC) {
        float w[8];
        dev::load_weight8<T>(row, u * 8, w);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] += a * w[i];
    } else {
        acc[0] += a * dev::load_weight<T>(row, u);
    }
}

struct FfnArgs {
    const uint8_t *gate, *up, *down;
    uint64_t gate_stride, up_stride, down_stride;
    uint32_t n_rows, n_in, n_out;
    const float *up_bias;
    uint32_t activation;
};

template <uint32_t T, bool VEC>
__global__ void __launch_bounds__(kThreads)
    ffn_chunk_kernel(FfnArgs f, const float *__restrict__ x, const int8_t *__restrict__ xq,
                     const float *__restrict__ xd, const int32_t *__restrict__ list, const uint32_t *__restrict__ n_list,
                     float *__restrict__ partial) {
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh); the list is not known before
    const uint32_t count = min(*n_list, f.n_rows);
    const uint32_t first = blockIdx.x * kChunk;
    if (first >= count) return;
    __shared__ float a_s[kChunk];
    __shared__ int32_t row_s[kChunk];
    const int warp = threadIdx.x / dev::kWarp;
    const uint32_t j = first + warp;
    float a = 0.0f;
    int32_t r = -1;
    if (j < count) {
        r = list[j];
        constexpr bool kPaired = VEC && (T == PI_BK_F32 || T == PI_BK_F16 || T == PI_BK_BF16);
        if (kPaired && r >= 0 && uint32_t(r) < f.n_rows && f.activation != PI_BK_ACT_RELU) {
            float g, u;
            row_dot_pair<T>(f.gate + size_t(r) * f.gate_stride, f.up + size_t(r) * f.up_stride, f.n_in, x, g, u);
            if (f.up_bias) u += f.up_bias[r];
            a = activate(f.activation, g, u);
        } else if (r >= 0 && uint32_t(r) < f.n_rows) {  // an out-of-range index contributes nothing, not a fault
            float g = 0.0f;
            if (f.activation != PI_BK_ACT_RELU) g = row_dot<T, VEC>(f.gate + size_t(r) * f.gate_stride, f.n_in, x, xq, xd);
            const bool gated_off = (f.activation == PI_BK_ACT_REGLU || f.activation == PI_BK_ACT_DRELU) && !(g > 0.0f);
            if (!gated_off) {
                float u = row_dot<T, VEC>(f.up + size_t(r) * f.up_stride, f.n_in, x, xq, xd);
                if (f.up_bias) u += f.up_bias[r];
                a = activate(f.activation, g, u);
            }
        }
    }
    if (threadIdx.x % dev::kWarp == 0) {
        a_s[warp] = a;
        row_s[warp] = r;
    }
    __syncthreads();
    constexpr int W = unit_width<T, VEC>();
    const uint32_t n_units = f.n_out / W;
    float *out = partial + size_t(blockIdx.x) * f.n_out;
    for (uint32_t u = threadIdx.x; u < n_units; u += kThreads) {
        float acc[kUnitMax];
#pragma unroll
        for (int i = 0; i < kUnitMax; ++i) acc[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < kChunk; ++e) {
            const float ae = a_s[e];
            if (ae != 0.0f) axpy_unit<T, VEC>(f.down + size_t(row_s[e]) * f.down_stride, u, ae, acc);
        }
#pragma unroll
        for (int i = 0; i < W; ++i) out[unit_col<T, VEC>(u, i)] = acc[i];
    }
}

__global__ void __launch_bounds__(kReduceCols *kReduceLanes)
    reduce_kernel(const float *__restrict__ partial, const uint32_t *__restrict__ n_list, uint32_t n_rows,
                  uint32_t n_out, float *__restrict__ y) {
    __shared__ float sums[kReduceLanes][kReduceCols];
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh)
    const uint32_t count = min(*n_list, n_rows);
    const uint32_t n_chunks = (count + kChunk - 1) / kChunk;
    const uint32_t c = blockIdx.x * kReduceCols + threadIdx.x % kReduceCols;
    const uint32_t lane = threadIdx.x / kReduceCols;
    float s = 0.0f;
    if (c < n_out) {
#pragma unroll 4
        for (uint32_t k = lane; k < n_chunks; k += kReduceLanes) s += partial[size_t(k) * n_out + c];
    }
    sums[lane][threadIdx.x % kReduceCols] = s;
    __syncthreads();
    if (lane == 0 && c < n_out) {
        float total = 0.0f;
#pragma unroll
        for (int l = 0; l < kReduceLanes; ++l) total += sums[l][threadIdx.x];
        y[c] += total;
    }
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <uint32_t T, bool VEC>
void launch_chunks(cudaStream_t stream, unsigned grid, const FfnArgs &f, const float *x, const int8_t *xq,
                   const float *xd, const int32_t *list, const uint32_t *n_list, float *partial) {
    launch_dependent(ffn_chunk_kernel<T, VEC>, grid, kThreads, 0, stream, f, x, xq, xd, list, n_list, partial);
}

}  // namespace

int32_t sparse_ffn(pi_bk_queue *queue, const pi_bk_ffn *ffn, const float *x, const int32_t *list,
                   const uint32_t *n_list, float *y) {
    if (!queue || !ffn) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: sparse_ffn: NULL queue or ffn");
    if (!x || !list || !n_list || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: sparse_ffn: NULL x, list, n_list or y");
    if (ffn->activation > PI_BK_ACT_RELU) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: sparse_ffn: unknown activation " + std::to_string(ffn->activation));
    }
    const bool has_gate = ffn->activation != PI_BK_ACT_RELU;
    if (has_gate) {
        if (int32_t s = check_matrix(&ffn->gate, "sparse_ffn gate")) return s;
    }
    if (int32_t s = check_matrix(&ffn->up, "sparse_ffn up")) return s;
    if (int32_t s = check_matrix(&ffn->down_t, "sparse_ffn down_t")) return s;
    const uint32_t type = ffn->up.type;
    // n_in: the length of x; n_out: of y (down_t's row width; usually the same).
    const uint64_t n_in = ffn->up.n_cols, n_out = ffn->down_t.n_cols, n_rows = ffn->up.n_rows;
    if (ffn->down_t.type != type || (has_gate && ffn->gate.type != type)) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: sparse_ffn: gate, up and down_t must have the same weight type");
    }
    if (ffn->down_t.n_rows < n_rows || (has_gate && (ffn->gate.n_cols != n_in || ffn->gate.n_rows < n_rows))) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: sparse_ffn: gate/up/down_t shapes disagree");
    }
    if (n_rows == 0 || n_out == 0) return PI_BK_OK;
    const bool quant = is_quantized(type);
    const bool vec = !quant && n_in % 8 == 0 && n_out % 8 == 0 && aligned16(x) && aligned16(ffn->up.data) &&
                     aligned16(ffn->down_t.data) && ffn->up.row_stride % 16 == 0 && ffn->down_t.row_stride % 16 == 0 &&
                     (!has_gate || (aligned16(ffn->gate.data) && ffn->gate.row_stride % 16 == 0));
    const uint64_t n_chunks = (n_rows + kChunk - 1) / kChunk;
    const size_t q_bytes = quant ? q8_bytes(1, n_in) : 0;
    if (int32_t s = prepare(queue, q_bytes + n_chunks * n_out * sizeof(float))) return s;
    auto *ws = static_cast<uint8_t *>(queue->workspace);
    auto *xq = reinterpret_cast<int8_t *>(ws);
    auto *xd = reinterpret_cast<float *>(ws + ((n_in + 255) & ~uint64_t(255)));
    auto *partial = reinterpret_cast<float *>(ws + q_bytes);
    if (quant) {
        if (int32_t s = quantize_q8(queue->stream, x, 1, n_in, xq, xd)) return s;
    }
    const FfnArgs f{static_cast<const uint8_t *>(ffn->gate.data), static_cast<const uint8_t *>(ffn->up.data),
                    static_cast<const uint8_t *>(ffn->down_t.data), ffn->gate.row_stride, ffn->up.row_stride,
                    ffn->down_t.row_stride, uint32_t(n_rows), uint32_t(n_in), uint32_t(n_out), ffn->up_bias, ffn->activation};
    const unsigned grid = unsigned(n_chunks);
    cudaStream_t st = queue->stream;
    switch (type) {
        case PI_BK_F32:
            vec ? launch_chunks<PI_BK_F32, true>(st, grid, f, x, xq, xd, list, n_list, partial)
                : launch_chunks<PI_BK_F32, false>(st, grid, f, x, xq, xd, list, n_list, partial);
            break;
        case PI_BK_F16:
            vec ? launch_chunks<PI_BK_F16, true>(st, grid, f, x, xq, xd, list, n_list, partial)
                : launch_chunks<PI_BK_F16, false>(st, grid, f, x, xq, xd, list, n_list, partial);
            break;
        case PI_BK_BF16:
            vec ? launch_chunks<PI_BK_BF16, true>(st, grid, f, x, xq, xd, list, n_list, partial)
                : launch_chunks<PI_BK_BF16, false>(st, grid, f, x, xq, xd, list, n_list, partial);
            break;
        case PI_BK_Q8_0: launch_chunks<PI_BK_Q8_0, false>(st, grid, f, x, xq, xd, list, n_list, partial); break;
        case PI_BK_Q4_0: launch_chunks<PI_BK_Q4_0, false>(st, grid, f, x, xq, xd, list, n_list, partial); break;
    }
    if (int32_t s = check_launch("sparse_ffn chunks")) return s;
    const unsigned rgrid = unsigned((n_out + kReduceCols - 1) / kReduceCols);
    launch_dependent(reduce_kernel, rgrid, kReduceCols * kReduceLanes, 0, st, partial, n_list, uint32_t(n_rows),
                     uint32_t(n_out), y);
    return check_launch("sparse_ffn reduce");
}

}  // namespace pi::cuda
