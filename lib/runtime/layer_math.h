// The small per-vector operations every executor shares: norms and rotary position embedding. Scalar float code;
// they cost O(n_embd) per token, nothing next to the matrix products.
#pragma once

#include <cstdint>

#include "model/hparams.h"

namespace pi {

// out = x / rms(x) * w
void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

// out = (x - mean) / std * w + b
void layernorm(float *out, const float *x, const float *w, const float *b, uint32_t n, float eps);

// Rotary position embedding of one head, in place. Normal mode rotates adjacent pairs (x[2i], x[2i+1]) (llama.cpp's
// layout of converted Llama weights); NeoX mode rotates the halves (x[i], x[i + rope_dim/2]) (Falcon).
// theta_i = pos * base^(-2i / rope_dim).
void rope(float *head, uint32_t rope_dim, uint32_t pos, float base, RopeMode mode);

}  // namespace pi
