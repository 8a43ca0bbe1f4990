// Device-side access to weight rows of every supported type (F32, F16, BF16, Q8_0, Q4_0 in ggml block layout) and the
// warp-level row dot products that the GEMV, predictor and sparse FFN kernels share.
//
// Float rows: a lane takes 8 consecutive weights per step (one 16-byte load for F16/BF16, two for F32) when the rows
// and x are 16-byte aligned and n_cols % 8 == 0 ("vec"), else one weight per lane per step.
// Quantized rows: a lane takes one 32-weight block per step, builds 8 packed int8x4 words from the block's 16-bit
// words (blocks are only 2-byte aligned), and takes the exact integer dot with the activation's int8 values through
// dp4a; the block adds isum * (d_w * d_x) to the lane's sum, the CPU backend's formula.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/backend.h"

namespace pi::cuda::dev {

constexpr int kWarp = 32;

__device__ __forceinline__ float fp16_bits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }
__device__ __forceinline__ uint16_t ld_u16(const uint8_t *p) { return *reinterpret_cast<const uint16_t *>(p); }
__device__ __forceinline__ uint32_t ld_u32_2aligned(const uint8_t *p) {
    return uint32_t(ld_u16(p)) | (uint32_t(ld_u16(p + 2)) << 16);
}

template <uint32_t T>
struct Block;  // bytes per 32-weight block of the quantized types
template <>
struct Block<PI_BK_Q8_0> {
    static constexpr int bytes = 34;
};
template <>
struct Block<PI_BK_Q4_0> {
    static constexpr int bytes = 18;
};

// 16 bytes of a weight row (16-byte aligned). Weights are read once per step and never reused by the same SM, so the
// load skips L1 (which keeps x and the norm's weight for the other warps) and asks L2 for 256-byte granules (the next
// lines of the row arrive with the first). PI_CUDA_STREAM_LOADS=0 at compile time gives the plain read-only load.
#ifndef PI_CUDA_STREAM_LOADS
#define PI_CUDA_STREAM_LOADS 1
#endif
__device__ __forceinline__ uint4 load_stream16(const void *p) {
#if PI_CUDA_STREAM_LOADS
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
#else
    return __ldg(reinterpret_cast<const uint4 *>(p));
#endif
}

// Weight k of a row, exactly (every supported type is exact in binary32).
template <uint32_t T>
__device__ __forceinline__ float load_weight(const uint8_t *row, uint32_t k) {
    if constexpr (T == PI_BK_F32) {
        return reinterpret_cast<const float *>(row)[k];
    } else if constexpr (T == PI_BK_F16) {
        return fp16_bits(ld_u16(row + 2 * size_t(k)));
    } else if constexpr (T == PI_BK_BF16) {
        return bf16_bits(ld_u16(row + 2 * size_t(k)));
    } else if constexpr (T == PI_BK_Q8_0) {
        const uint8_t *blk = row + size_t(k / 32) * 34;
        return fp16_bits(ld_u16(blk)) * float(int8_t(blk[2 + k % 32]));
    } else {
        const uint8_t *blk = row + size_t(k / 32) * 18;
        const uint32_t j = k % 32;
        const uint8_t byte = blk[2 + j % 16];
        const int nib = j < 16 ? (byte & 0x0f) : (byte >> 4);
        return fp16_bits(ld_u16(blk)) * float(nib - 8);
    }
}

// The 8 weights of 16 bytes of an F16/BF16 row.
template <uint32_t T>
__device__ __forceinline__ void unpack8(const uint4 v, float (&w)[8]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (T == PI_BK_F16) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&words[i]));
            w[2 * i] = f.x, w[2 * i + 1] = f.y;
        } else {
            w[2 * i] = __uint_as_float(words[i] << 16);
            w[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        }
    }
}

// Weights k..k+7 of a float-type row whose address at k is 16-byte aligned.
template <uint32_t T>
__device__ __forceinline__ void load_weight8(const uint8_t *row, uint32_t k, float (&w)[8]) {
    if constexpr (T == PI_BK_F32) {
        const uint8_t *p = row + 4 * size_t(k);
        const uint4 a = load_stream16(p), b = load_stream16(p + 16);
        w[0] = __uint_as_float(a.x), w[1] = __uint_as_float(a.y), w[2] = __uint_as_float(a.z);
        w[3] = __uint_as_float(a.w), w[4] = __uint_as_float(b.x), w[5] = __uint_as_float(b.y);
        w[6] = __uint_as_float(b.z), w[7] = __uint_as_float(b.w);
    } else {
        unpack8<T>(load_stream16(row + 2 * size_t(k)), w);
    }
}

// The 32 weight codes of a quantized block as 8 words of 4 signed bytes, in element order; returns fp32(d).
template <uint32_t T>
__device__ __forceinline__ float load_block_codes(const uint8_t *blk, int (&q)[8]) {
    if constexpr (T == PI_BK_Q8_0) {
#pragma unroll
        for (int i = 0; i < 8; ++i) q[i] = int(ld_u32_2aligned(blk + 2 + 4 * i));
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t v = ld_u32_2aligned(blk + 2 + 4 * i);
            // Nibble n becomes the byte n - 8 (wrapping subtraction per byte gives the two's complement int8).
            q[i] = int(__vsub4(v & 0x0f0f0f0fu, 0x08080808u));
            q[i + 4] = int(__vsub4((v >> 4) & 0x0f0f0f0fu, 0x08080808u));
        }
    }
    return fp16_bits(ld_u16(blk));
}

// Sums a lane value over the warp; every lane gets the sum (a fixed butterfly: deterministic).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Four x values from k; SCALED: times g (a norm's weight, applied on the fly), their squares (unscaled) added to ss.
// The four squares are summed in binary32 and added to ss in binary64: a quarter of the float->double conversions
// and double adds of squaring each value in double (H100: 16 conversions a clock per SM), 1 % of a dense decode
// layer (pi_kernel_bench); the scale moves by ~1e-7 relative. PI_CUDA_NORM_SQUARES_F32=0 squares in double.
#ifndef PI_CUDA_NORM_SQUARES_F32
#define PI_CUDA_NORM_SQUARES_F32 1
#endif
template <bool SCALED>
__device__ __forceinline__ float4 load_x4(const float *x, const float *g, size_t k, double &ss) {
    float4 a = __ldg(reinterpret_cast<const float4 *>(x + k));
    if constexpr (SCALED) {
#if PI_CUDA_NORM_SQUARES_F32
        ss += double(a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w);
#else
        ss += double(a.x) * a.x + double(a.y) * a.y + double(a.z) * a.z + double(a.w) * a.w;
#endif
        const float4 w = __ldg(reinterpret_cast<const float4 *>(g + k));
        a.x *= w.x, a.y *= w.y, a.z *= w.z, a.w *= w.w;
    }
    return a;
}

// The scale of an RMS norm from a warp's per-lane sums of squares that together cover the n values once (the
// lanes' column split of the dot loops): 1 / sqrt(mean + eps) as the norm kernel forms it. Every warp that covers
// the columns the same way gets the same bits.
__device__ __forceinline__ float warp_rms_scale(double ss, uint32_t n, float eps) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    return 1.0f / sqrtf(float(ss / double(n)) + eps);
}

// Per-lane partial dots of one float-type row with nt <= NT activation rows (x + t * ldx); call warp_sum after.
// SCALED (nt == 1): the activation is x * g elementwise and ss collects the lane's squares of x (warp_rms_scale).
template <uint32_t T, bool VEC, int NT, bool SCALED = false>
__device__ __forceinline__ void dot_float_partial(const uint8_t *row, uint32_t n_cols, const float *x, uint32_t ldx,
                                                  int nt, float (&acc)[NT], const float *g = nullptr,
                                                  double *ss = nullptr) {
    const int lane = threadIdx.x % kWarp;
    double sq = 0.0;
    if constexpr (VEC) {
        // Unrolled so that each lane has several 16-byte loads in flight (a GPU does not run ahead past a load whose
        // result the next FMA needs): one outstanding load per warp leaves HBM idle between requests.
#pragma unroll 4
        for (uint32_t k = lane * 8; k < n_cols; k += kWarp * 8) {
            float w[8];
            load_weight8<T>(row, k, w);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                if (t >= nt) break;
                const float *xt = x + size_t(t) * ldx;
                const float4 a = load_x4<SCALED>(xt, g, k, sq), b = load_x4<SCALED>(xt, g, size_t(k) + 4, sq);
                acc[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z +
                          w[7] * b.w;
            }
        }
    } else {
        for (uint32_t k = lane; k < n_cols; k += kWarp) {
            const float w = load_weight<T>(row, k);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                if (t >= nt) break;
                float xv = __ldg(x + size_t(t) * ldx + k);
                if constexpr (SCALED) {
                    sq += double(xv) * xv;
                    xv *= __ldg(g + k);
                }
                acc[t] += w * xv;
            }
        }
    }
    if constexpr (SCALED) *ss = sq;
}

// Per-lane partial dots of one quantized row with nt <= NT quantized activation rows (xq + t * n_cols int8 values,
// xd + t * n_cols / 32 block scales); call warp_sum after.
template <uint32_t T, int NT>
__device__ __forceinline__ void dot_quant_partial(const uint8_t *row, uint32_t n_cols, const int8_t *xq,
                                                  const float *xd, int nt, float (&acc)[NT]) {
    const int lane = threadIdx.x % kWarp;
    const uint32_t nb = n_cols / 32;
#pragma unroll 2
    for (uint32_t b = lane; b < nb; b += kWarp) {
        int q[8];
        const float dw = load_block_codes<T>(row + size_t(b) * Block<T>::bytes, q);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t >= nt) break;
            const int4 *xp = reinterpret_cast<const int4 *>(xq + size_t(t) * n_cols + size_t(b) * 32);
            const int4 a = __ldg(xp), c = __ldg(xp + 1);
            int s = __dp4a(q[0], a.x, 0);
            s = __dp4a(q[1], a.y, s);
            s = __dp4a(q[2], a.z, s);
            s = __dp4a(q[3], a.w, s);
            s = __dp4a(q[4], c.x, s);
            s = __dp4a(q[5], c.y, s);
            s = __dp4a(q[6], c.z, s);
            s = __dp4a(q[7], c.w, s);
            acc[t] += float(s) * (dw * __ldg(xd + size_t(t) * nb + b));
        }
    }
}

// a(gate, up) of the dense path (ffn_activation, matmul_glu): the CPU's apply_activation formulas
// (backends/cpu/token_ops.cpp), NaN behaviour included. The sparse FFN has its own (sparse_ffn.cu).
__device__ __forceinline__ float dense_activation(uint32_t act, float g, float u) {
    switch (act) {
        case PI_BK_ACT_SILU: return g / (1.0f + expf(-g)) * u;
        case PI_BK_ACT_REGLU: return (g > 0.0f ? g : 0.0f) * u;
        case PI_BK_ACT_DRELU: return (g > 0.0f ? g : 0.0f) * (u > 0.0f ? u : 0.0f);
        default: return u > 0.0f ? u : 0.0f;
    }
}

// y[c] += a * W[row][c] for the 8 columns c0..c0+7 of a lane's unit (float types, vec alignment) into acc.
template <uint32_t T>
__device__ __forceinline__ void axpy8(const uint8_t *row, uint32_t c0, float a, float (&acc)[8]) {
    float w[8];
    load_weight8<T>(row, c0, w);
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] += a * w[i];
}

}  // namespace pi::cuda::dev
