#include "planner/scratch_layout.h"

#include "planner/model_problem.h"

namespace pi::planner {

ScratchLayout ScratchLayout::of(uint32_t T, uint32_t E, uint32_t F, uint32_t q_dim, uint32_t kv_dim, uint32_t n_vocab,
                                uint32_t n_layer) {
    // Every region starts on a 64-float (256-byte) boundary so that vector loads of any backend are aligned.
    ScratchLayout s;
    uint64_t at = 0;
    auto take = [&](uint64_t floats) {
        const uint64_t here = at;
        at = align_up(at + floats, 64);
        return here;
    };
    s.x = take(uint64_t(T) * E);
    s.xn = take(uint64_t(T) * E);
    s.xn2 = take(uint64_t(T) * E);
    s.tmp = take(uint64_t(T) * E);
    s.qkv = take(uint64_t(T) * (q_dim + 2ull * kv_dim));
    s.att = take(uint64_t(T) * q_dim);
    s.gate = take(uint64_t(T) * F);
    s.up = take(uint64_t(T) * F);
    s.partial = take(E);
    s.logits = take(n_vocab);
    s.counts = take(2ull * n_layer);
    s.block = take(kBlockHeader + E + 2ull * F);
    s.step = take(1);
    s.floats = at;
    return s;
}

uint64_t workspace_bytes(uint32_t tokens, uint32_t n_embd, uint32_t n_ff, uint32_t q_dim, uint32_t kv_dim,
                         uint32_t n_vocab, uint32_t n_layer, uint32_t n_split) {
    const ScratchLayout s = ScratchLayout::of(tokens, n_embd, n_ff, q_dim, kv_dim, n_vocab, n_layer);
    return align_up(s.floats * 4, kDeviceAlignment) + align_up(uint64_t(n_split) * n_ff * 4, kDeviceAlignment) +
           align_up(uint64_t(n_ff) * 4, kDeviceAlignment);
}

}  // namespace pi::planner
