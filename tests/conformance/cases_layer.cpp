// norm, rope, kv_store, attention.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/numeric.h"
#include "cases.h"

namespace pi::conformance {
namespace {

std::string kv_name(uint32_t kv) { return kv == PI_BK_KV_F16 ? "kv-f16" : "kv-f32"; }

// RMSNorm / LayerNorm: sums in double on both sides; the float scaling is a couple of roundings. Tolerance 1e-6.
void norm_cases(Env &env) {
    for (bool layer : {false, true}) {
        for (uint64_t dim : {uint64_t(4096), uint64_t(1000), uint64_t(7)}) {
            env.row("norm", layer ? "layernorm" : "rmsnorm", "n=3 d=" + std::to_string(dim), 1e-6, [&](std::string *) {
                const uint64_t n = 3;
                std::vector<float> x = random_floats(env.rng, n * dim, 2.0f);
                for (float &v : x) v += 0.5f;  // a non-zero mean for layernorm
                const std::vector<float> w = random_floats(env.rng, dim), b = random_floats(env.rng, dim);
                std::vector<float> out[2];
                Device *devs[2] = {&env.ref, &env.cand};
                for (int d = 0; d < 2; ++d) {
                    Device &dev = *devs[d];
                    const float *xd = dev.put(x), *wd = dev.put(w), *bd = layer ? dev.put(b) : nullptr;
                    float *y = static_cast<float *>(dev.alloc(n * dim * 4));
                    dev.check(dev.ops().norm(dev.queue(), xd, wd, bd, n, dim, 1e-5f, y), "norm");
                    out[d] = dev.get(y, n * dim);
                }
                return relative_error(out[1], out[0]);
            });
        }
    }
}

// RoPE in place on rows with padding between them (row_stride > n_heads * head_dim; the padding must be left alone).
// theta = pos * base^(-2i/d) in binary32 through each side's pow/sin/cos: at pos ~1000 an ulp of theta is ~6e-5,
// so the tolerance is 1e-4 relative L2 (at pos 0..3, measured ~1e-7).
void rope_cases(Env &env) {
    struct Shape {
        uint32_t heads, head_dim, rope_dim, pos0;
    };
    const Shape shapes[] = {{4, 64, 64, 0}, {4, 64, 32, 7}, {2, 128, 128, 1000}, {3, 80, 80, 31}};
    for (uint32_t mode : {uint32_t(PI_BK_ROPE_NORMAL), uint32_t(PI_BK_ROPE_NEOX)}) {
        for (const Shape &s : shapes) {
            const std::string shape = "n=3 h=" + std::to_string(s.heads) + " hd=" + std::to_string(s.head_dim) +
                                      " rd=" + std::to_string(s.rope_dim) + " pos0=" + std::to_string(s.pos0);
            env.row("rope", mode == PI_BK_ROPE_NORMAL ? "normal" : "neox", shape, 1e-4, [&](std::string *) {
                const uint64_t n = 3, stride = uint64_t(s.heads) * s.head_dim + 8;
                const std::vector<float> x = random_floats(env.rng, n * stride);
                std::vector<float> out[2];
                Device *devs[2] = {&env.ref, &env.cand};
                for (int d = 0; d < 2; ++d) {
                    Device &dev = *devs[d];
                    float *xd = dev.put(x);
                    dev.check(dev.ops().rope(dev.queue(), xd, n, stride, s.heads, s.head_dim, s.rope_dim, s.pos0,
                                             10000.0f, mode),
                              "rope");
                    out[d] = dev.get(xd, n * stride);
                }
                return relative_error(out[1], out[0]);
            });
        }
    }
}

// Widens a cache to floats (F16 bits or floats).
std::vector<float> cache_values(const std::vector<uint8_t> &bytes, uint32_t kv) {
    std::vector<float> v(bytes.size() / (kv == PI_BK_KV_F16 ? 2 : 4));
    for (size_t i = 0; i < v.size(); ++i) {
        if (kv == PI_BK_KV_F16) {
            uint16_t h;
            std::memcpy(&h, bytes.data() + 2 * i, 2);
            v[i] = cpu::fp16_to_fp32(h);
        } else {
            std::memcpy(&v[i], bytes.data() + 4 * i, 4);
        }
    }
    return v;
}

// Values as a cache of type kv holds them (fp16 bits or floats).
std::vector<uint8_t> cache_bytes(const std::vector<float> &values, uint32_t kv) {
    std::vector<uint8_t> out(values.size() * (kv == PI_BK_KV_F16 ? 2 : 4));
    if (kv == PI_BK_KV_F32) {
        std::memcpy(out.data(), values.data(), out.size());
        return out;
    }
    for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = cpu::fp32_to_fp16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
    }
    return out;
}

// Stores rows into a cache that already holds other positions: the stored values are one rounding (to fp16) or a
// copy, and the rest of the cache must be untouched. Exact (tolerance 0).
void kv_store_cases(Env &env) {
    for (uint32_t kv : {uint32_t(PI_BK_KV_F16), uint32_t(PI_BK_KV_F32)}) {
        env.row("kv_store", kv_name(kv), "kv_dim=256 n=3 pos0=5 stride=264", 0.0, [&](std::string *) {
            const uint32_t kv_dim = 256, n_ctx = 16, pos0 = 5;
            const uint64_t n = 3, stride = 264, elem = kv == PI_BK_KV_F16 ? 2 : 4;
            std::vector<uint8_t> init(n_ctx * kv_dim * elem);
            for (auto &b : init) b = uint8_t(env.rng() & 0x3f);  // small finite fp16/f32 bit patterns
            const std::vector<float> k = random_floats(env.rng, n * stride), v = random_floats(env.rng, n * stride);
            std::vector<float> out[2];
            Device *devs[2] = {&env.ref, &env.cand};
            for (int d = 0; d < 2; ++d) {
                Device &dev = *devs[d];
                void *kc = dev.put(init.data(), init.size()), *vc = dev.put(init.data(), init.size());
                const float *kd = dev.put(k), *vd = dev.put(v);
                dev.check(dev.ops().kv_store(dev.queue(), kc, vc, kv, kv_dim, pos0, n, kd, vd, stride), "kv_store");
                std::vector<uint8_t> kb(init.size()), vb(init.size());
                dev.get(kb.data(), kc, kb.size());
                dev.get(vb.data(), vc, vb.size());
                out[d] = cache_values(kb, kv);
                const std::vector<float> vv = cache_values(vb, kv);
                out[d].insert(out[d].end(), vv.begin(), vv.end());
            }
            return relative_error(out[1], out[0]);
        });
    }
}

// Causal attention over a cache filled with random values (both sides read the same bytes). Softmax weights and
// the weighted sum in binary32, in different orders (online softmax on the GPU). Tolerance 1e-5 relative L2.
void attention_cases(Env &env) {
    struct Shape {
        uint32_t n_head, n_head_kv, head_dim, pos0;
        uint64_t n;
    };
    const Shape shapes[] = {{8, 2, 64, 37, 3}, {4, 4, 128, 0, 1}, {2, 1, 80, 500, 1}, {32, 32, 128, 300, 1},
                            {4, 2, 64, 0, 20}, {2, 2, 36, 9, 2},
                            // past the CUDA backend's short-context kernel (2048 positions): its online-softmax one
                            {4, 2, 64, 2100, 2},
                            // prompt chunks (>= 128 rows: the CUDA backend's tiled kernel): a partial last query
                            // tile, grouped heads, head sizes that fill part of a thread's dimensions, positions
                            // past 2048, the 7B head size over a 512-token chunk
                            {8, 2, 64, 0, 130}, {2, 1, 80, 60, 150}, {4, 4, 32, 1000, 128}, {2, 2, 64, 2000, 140},
                            {4, 4, 128, 0, 512}};
    for (uint32_t kv : {uint32_t(PI_BK_KV_F16), uint32_t(PI_BK_KV_F32)}) {
        for (const Shape &s : shapes) {
            const std::string shape = "heads=" + std::to_string(s.n_head) + "/" + std::to_string(s.n_head_kv) +
                                      " hd=" + std::to_string(s.head_dim) + " pos0=" + std::to_string(s.pos0) +
                                      " n=" + std::to_string(s.n);
            env.row("attention", kv_name(kv), shape, 1e-5, [&](std::string *) {
                const uint64_t kv_dim = uint64_t(s.n_head_kv) * s.head_dim, n_pos = s.pos0 + s.n;
                const uint64_t q_dim = uint64_t(s.n_head) * s.head_dim;
                // Scores of magnitude a few units, so the softmax is neither flat nor one-hot.
                const std::vector<float> kf = random_floats(env.rng, n_pos * kv_dim),
                                         vf = random_floats(env.rng, n_pos * kv_dim),
                                         q = random_floats(env.rng, s.n * q_dim, 1.0f);
                const std::vector<uint8_t> kb = cache_bytes(kf, kv), vb = cache_bytes(vf, kv);
                const float scale = 1.0f / std::sqrt(float(s.head_dim));
                std::vector<float> out[2];
                Device *devs[2] = {&env.ref, &env.cand};
                for (int d = 0; d < 2; ++d) {
                    Device &dev = *devs[d];
                    const void *kc = dev.put(kb.data(), kb.size()), *vc = dev.put(vb.data(), vb.size());
                    const float *qd = dev.put(q);
                    float *o = static_cast<float *>(dev.alloc(s.n * q_dim * 4));
                    dev.check(dev.ops().attention(dev.queue(), qd, kc, vc, kv, s.n_head, s.n_head_kv, s.head_dim,
                                                  s.pos0, s.n, scale, o),
                              "attention");
                    out[d] = dev.get(o, s.n * q_dim);
                }
                return relative_error(out[1], out[0]);
            });
        }
    }
}

// attention_decode against the reference's own attention_decode (the CPU's: rope, kv_store and attention in
// sequence): the output and both whole caches compared (the stored row; every other position untouched). The
// candidate reads the position from device memory in the pos_word rows. Tolerance 1e-4 as rope's (angles through
// each side's powf/sincosf; at pos ~1500 an ulp of theta is ~1e-4 relative). The pos_word rows also name
// next_weights (a buffer of the cache's size: not a multiple of any load batch), which must change nothing.
void attention_decode_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), attention_decode)) return;
    decltype(env.rng) rng(20261128);
    struct Shape {
        uint32_t n_head, n_head_kv, head_dim, rope_dim, pos, max_positions;
    };
    // Positions 127 and 128: one chunk of 128 exactly, and a second chunk of one row (the CUDA kernel's chunks);
    // 4000: past the 2048 positions the first kernels served (no rotation: at such angles the two sides' powf and
    // sincosf differ by more than this tolerance); head_dim 256: two dimension chunks per lane.
    const Shape shapes[] = {{8, 2, 64, 64, 37, 64},     {4, 4, 128, 0, 0, 8},         {32, 32, 128, 128, 300, 512},
                            {2, 1, 80, 40, 500, 600},   {4, 2, 64, 64, 1500, 2048},   {4, 4, 128, 128, 127, 256},
                            {4, 4, 128, 128, 128, 130}, {4, 2, 256, 256, 200, 300},   {4, 1, 128, 0, 4000, 4096}};
    for (uint32_t kv : {uint32_t(PI_BK_KV_F16), uint32_t(PI_BK_KV_F32)}) {
        for (uint32_t mode : {uint32_t(PI_BK_ROPE_NORMAL), uint32_t(PI_BK_ROPE_NEOX)}) {
            for (bool word : {false, true}) {
                for (const Shape &s : shapes) {
                    const std::string type = kv_name(kv) + (mode == PI_BK_ROPE_NORMAL ? " normal" : " neox") +
                                             (word ? " pos_word" : "");
                    const std::string shape = "heads=" + std::to_string(s.n_head) + "/" + std::to_string(s.n_head_kv) +
                                              " hd=" + std::to_string(s.head_dim) + " rd=" +
                                              std::to_string(s.rope_dim) + " pos=" + std::to_string(s.pos);
                    env.row("attention_decode", type, shape, 1e-4, [&](std::string *) {
                        const uint64_t kv_dim = uint64_t(s.n_head_kv) * s.head_dim;
                        const uint64_t q_dim = uint64_t(s.n_head) * s.head_dim;
                        const uint64_t cache_values_n = uint64_t(s.max_positions) * kv_dim;
                        const std::vector<float> kf = random_floats(rng, cache_values_n),
                                                 vf = random_floats(rng, cache_values_n),
                                                 q = random_floats(rng, q_dim, 1.0f), k = random_floats(rng, kv_dim),
                                                 v = random_floats(rng, kv_dim);
                        const std::vector<uint8_t> kb = cache_bytes(kf, kv), vb = cache_bytes(vf, kv);
                        std::vector<float> out[2], caches[2];  // compared apart: the caches would dilute out's error
                        Device *devs[2] = {&env.ref, &env.cand};
                        for (int d = 0; d < 2; ++d) {
                            Device &dev = *devs[d];
                            pi_bk_decode_attention a{};
                            a.n_head = s.n_head;
                            a.n_head_kv = s.n_head_kv;
                            a.head_dim = s.head_dim;
                            a.rope_dim = s.rope_dim;
                            a.rope_mode = mode;
                            a.rope_freq_base = 10000.0f;
                            a.scale = 1.0f / std::sqrt(float(s.head_dim));
                            a.kv_type = kv;
                            a.max_positions = s.max_positions;
                            a.k_cache = dev.put(kb.data(), kb.size());
                            a.v_cache = dev.put(vb.data(), vb.size());
                            if (word) {
                                a.next_weights = dev.put(kb.data(), kb.size());
                                a.next_weights_bytes = kb.size();
                            }
                            const float *qd = dev.put(q), *kd = dev.put(k), *vd = dev.put(v);
                            const uint32_t *pw = word && d == 1 ? dev.put(std::vector<uint32_t>{s.pos}) : nullptr;
                            float *o = static_cast<float *>(dev.alloc(q_dim * 4));
                            // A wrong pos argument where the word is read: the word must win.
                            const uint32_t pos_arg = pw ? s.pos + 1 : s.pos;
                            dev.check(dev.ops().attention_decode(dev.queue(), &a, qd, kd, vd, pos_arg, pw, o),
                                      "attention_decode");
                            out[d] = dev.get(o, q_dim);
                            std::vector<uint8_t> kc(kb.size()), vc(vb.size());
                            dev.get(kc.data(), a.k_cache, kc.size());
                            dev.get(vc.data(), a.v_cache, vc.size());
                            for (const auto *c : {&kc, &vc}) {
                                const std::vector<float> w = cache_values(*c, kv);
                                caches[d].insert(caches[d].end(), w.begin(), w.end());
                            }
                        }
                        return std::max(relative_error(out[1], out[0]), relative_error(caches[1], caches[0]));
                    });
                }
            }
        }
    }
}

}  // namespace

void layer_cases(Env &env) {
    norm_cases(env);
    rope_cases(env);
    kv_store_cases(env);
    attention_cases(env);
    attention_decode_cases(env);
}

}  // namespace pi::conformance
