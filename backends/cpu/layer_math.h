// The small per-vector operations every executor shares: norms, rotary position embedding and one attention head
// over a KV cache. Scalar float code; they cost O(n_embd) (attention: O(context)) per token, nothing next to the
// matrix products.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_features.h"


namespace pi::cpu {

enum class RopeStyle { Normal /* adjacent pairs */, Neox /* halves */ };

// out = x / rms(x) * w
void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

// out = (x - mean) / std * w + b
void layernorm(float *out, const float *x, const float *w, const float *b, uint32_t n, float eps);

// Rotary position embedding of one head, in place. Normal mode rotates adjacent pairs (x[2i], x[2i+1]) (llama.cpp's
// layout of converted Llama weights); NeoX mode rotates the halves (x[i], x[i + rope_dim/2]) (Falcon).
// theta_i = pos * base^(-2i / rope_dim).
void rope(float *head, uint32_t rope_dim, uint32_t pos, float base, RopeStyle style);

// The cos/sin of every pair's angle at one position, shared by all heads and layers of a token: rope() computes
// them per pair and head (a powf and a sincosf each, 32 layers x 64 heads times per token for bench-7b); a table
// computes them once per position, with the same expressions, so rope_rotate gives rope()'s bits exactly.
class RopeAngles {
public:
    // Fills the table for (pos, rope_dim, base) unless it already holds it.
    void set(uint32_t pos, uint32_t rope_dim, float base);
    uint32_t rope_dim() const { return rope_dim_; }
    const float *cos() const { return cos_.data(); }
    const float *sin() const { return sin_.data(); }

private:
    bool valid_ = false;
    uint32_t pos_ = 0, rope_dim_ = 0;
    float base_ = 0.0f;
    std::vector<float> cos_, sin_;
};

// rope() of one head with the angles of a table (same results, bit for bit).
void rope_rotate(float *head, const RopeAngles &angles, RopeStyle style);

// Causal attention of one query head over n_pos cached positions: out = softmax(scale * q . K^T) . V, accumulated in
// position order. keys/values: n_pos rows, row p at element p * row_stride, holding head_dim values from element
// `offset` on, F16 bits (f16 = true) or binary32. `scores` is n_pos floats of scratch.
// The kernel of the ISA level (AVX-512: FMAs over the head dimension, another summation order than scalar).
void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out,
                 IsaLevel isa = active_isa_level());

// attend_head for query heads [h0, h1) of one token at once, `group` query heads to a key/value head (GQA): query
// head h reads the head_dim values at offset + (h / group) * head_dim of each row, q + h * head_dim, and writes
// out + h * head_dim; `scores` is (h1 - h0) * n_pos floats of scratch. Each head gets the bits attend_head gives it
// at the same level; the AVX-512 kernel reads each row's range once for all the heads (faster than head by head).
void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                  uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale, float *scores,
                  float *out, IsaLevel isa = active_isa_level());

// attend_heads over one part of the positions, for a decode token whose context is split over threads (the rows
// given are the part's): also writes each head's softmax state to stats (2 * (h1 - h0) floats: its largest score
// and the sum of exp(score - largest)), which merge_attention_parts needs.
void attend_heads_part(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset,
                       uint32_t head_dim, uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos,
                       float scale, float *scores, float *out, float *stats, IsaLevel isa);

// The attention over all positions from the parts' results: part t's outputs at outs + t * n_heads * head_dim and
// states at stats + t * n_heads * 2 (attend_heads_part over heads [0, n_heads)). Each head's output is the parts'
// outputs weighted by sum_t * exp(max_t - max), over their total, in part order (deterministic for a given split).
void merge_attention_parts(const float *outs, const float *stats, size_t n_parts, uint32_t n_heads, uint32_t head_dim,
                           float *out);

}  // namespace pi::cpu
