// The device math that RoPE and the KV store share between rope_kv.cu (the separate operations) and
// attention_decode.cu (the fused decode step), so that both give the same bits: the rotation of one pair and the
// rounding of a value to the cache type.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "backends/backend.h"

namespace pi::cuda::dev {

// Rotates pair i of one head by theta_i = pos * base^(-2i / rope_dim) (binary32 powf and sincosf, as the CPU's
// layer_math computes it, within a couple of ulp): adjacent values (NORMAL) or i and i + rope_dim / 2 (NEOX).
__device__ __forceinline__ void rotate_pair(float *head, uint32_t i, uint32_t rope_dim, uint32_t mode, float base,
                                            float pos) {
    const uint32_t half = rope_dim / 2;
    const float theta = pos * powf(base, -2.0f * float(i) / float(rope_dim));
    float s, c;
    sincosf(theta, &s, &c);
    float *a = mode == PI_BK_ROPE_NORMAL ? head + 2 * i : head + i;
    float *b = mode == PI_BK_ROPE_NORMAL ? head + 2 * i + 1 : head + i + half;
    const float a0 = *a, b0 = *b;
    *a = a0 * c - b0 * s;
    *b = a0 * s + b0 * c;
}

// A value as the cache stores it.
template <typename E>
__device__ __forceinline__ E to_cache(float v);
template <>
__device__ __forceinline__ float to_cache<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __half to_cache<__half>(float v) {
    return __float2half_rn(v);
}

}  // namespace pi::cuda::dev
