// The device workspace of the hybrid executor, in one place: its layout (device_model.cpp, hybrid_forward.cpp) and
// its size (the planner reserves exactly what the runtime allocates, so a plan's device bytes are what is used).
#pragma once

#include <cstdint>

namespace pi::planner {

// The workspace layout for `tokens` tokens (offsets in floats, each region on a 64-float boundary).
struct ScratchLayout {
    uint64_t x = 0, xn = 0, xn2 = 0, tmp = 0, qkv = 0, att = 0, gate = 0, up = 0, partial = 0, logits = 0,
             counts = 0, block = 0, step = 0, floats = 0;  // step: a recorded decode step's position (one word)
    // The transfer block of a split layer: [n_cold, 3 x pad][h: n_embd][cold list: n_ff][hot list: n_ff]
    static constexpr uint64_t kBlockHeader = 4;
    static ScratchLayout of(uint32_t tokens, uint32_t n_embd, uint32_t n_ff, uint32_t q_dim, uint32_t kv_dim,
                            uint32_t n_vocab, uint32_t n_layer);
};

// Bytes of the whole workspace: the layout, each split layer's slot table (n_ff int32) and the iota list (n_ff
// int32), every part 256-byte aligned. The planner passes n_split = n_layer (it plans before knowing which layers
// split: at most n_layer * n_ff * 4 bytes more than needed).
uint64_t workspace_bytes(uint32_t tokens, uint32_t n_embd, uint32_t n_ff, uint32_t q_dim, uint32_t kv_dim,
                         uint32_t n_vocab, uint32_t n_layer, uint32_t n_split);

}  // namespace pi::planner
