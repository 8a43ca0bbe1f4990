// pi_kernel_bench <candidate>: times the decode-step kernels of a backend (default: cuda) on bench-7b shapes and
// prints the bytes each call must read over its time. Timing: 200 enqueued calls between two queue
// synchronizations on the host clock, so launch overhead is included, as in a real decode step.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "device.h"
#include "host_data.h"
#include "runtime/plugin_loader.h"

using namespace pi::conformance;

namespace {

double time_us(Device &dev, int iters, const std::function<void()> &call) {
    call();  // warm up (workspace growth, cuBLAS handles, caches)
    dev.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) call();
    dev.synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::micro>(t1 - t0).count() / iters;
}

void report(const std::string &what, double bytes, double us) {
    std::printf("%-58s %9.1f us  %8.1f GB/s\n", what.c_str(), us, bytes / (us * 1e3));
}

uint64_t row_bytes(uint32_t type, uint64_t cols) {
    return type == PI_BK_Q8_0 ? cols / 32 * 34 : type == PI_BK_Q4_0 ? cols / 32 * 18 : type == PI_BK_F32 ? 4 * cols : 2 * cols;
}

// bench-7b's decode attention (32 heads of 128, RoPE over the whole head, F16 cache) over positions 0..pos.
pi_bk_decode_attention bench_attention(void *k_cache, void *v_cache, uint32_t pos) {
    pi_bk_decode_attention a{};
    a.n_head = a.n_head_kv = 32;
    a.head_dim = a.rope_dim = 128;
    a.rope_mode = PI_BK_ROPE_NORMAL;
    a.rope_freq_base = 10000.0f;
    a.scale = 0.088f;
    a.kv_type = PI_BK_KV_F16;
    a.max_positions = pos + 1;
    a.k_cache = k_cache;
    a.v_cache = v_cache;
    return a;
}

}  // namespace

int main(int argc, char **argv) {
    const std::string which = argc > 1 ? argv[1] : "cuda";
    const int iters = argc > 2 ? std::max(1, std::atoi(argv[2])) : 200;
    const pi_backend_ops *ops = pi::cpu::cpu_backend_ops();
    if (which == "cuda") {
        const pi::ModuleProbe probe = pi::probe_backend_module("cuda");
        char why[256] = "";
        if (!probe.found || probe.module->device_count(why, sizeof why) <= 0) {
            std::printf("SKIP: no cuda device (%s%s)\n", probe.why.c_str(), why);
            return 77;
        }
        ops = probe.module;
    }
    try {
        Device dev(ops, 0, -1, which);
        Rng rng(7);
        const uint64_t n_embd = 4096, n_ff = 11008, n_pred = 1024;
        for (uint32_t type : {uint32_t(PI_BK_F16), uint32_t(PI_BK_Q8_0), uint32_t(PI_BK_Q4_0)}) {
            for (auto [rows, cols] : {std::pair<uint64_t, uint64_t>{4096, 11008}, {11008, 4096}, {4096, 4096},
                                      {12288, 4096}, {22016, 4096}}) {
                if (type != PI_BK_F16 && rows > 11008) continue;  // the stacked q|k|v and gate|up of the F16 decode
                const HostMatrix w = random_matrix(rng, type, rows, cols);
                const pi_bk_matrix wm = dev.put(w);
                const float *x = dev.put(random_floats(rng, cols));
                float *y = static_cast<float *>(dev.alloc(rows * 4));
                const double us = time_us(dev, iters, [&] { dev.check(dev.ops().matmul(dev.queue(), &wm, x, 1, y), "matmul"); });
                report("matmul n=1 " + std::string(type_name(type)) + " " + std::to_string(rows) + "x" +
                           std::to_string(cols),
                       double(rows * row_bytes(type, cols)), us);
                dev.release();
            }
        }
        if (PI_BK_HAS_OP(&dev.ops(), matmul_glu)) {
            const HostMatrix w = random_matrix(rng, PI_BK_F16, 2 * n_ff, n_embd);
            const pi_bk_matrix wm = dev.put(w);
            const float *x = dev.put(random_floats(rng, n_embd));
            float *y = static_cast<float *>(dev.alloc(n_ff * 4));
            const double us = time_us(dev, iters, [&] {
                dev.check(dev.ops().matmul_glu(dev.queue(), &wm, PI_BK_ACT_SILU, x, y), "matmul_glu");
            });
            report("matmul_glu F16 [gate; up] 22016x4096 silu", double(w.bytes.size()), us);
            dev.release();
        }
        for (uint32_t type : {uint32_t(PI_BK_F16), uint32_t(PI_BK_Q4_0)}) {
            const HostMatrix fc1 = random_matrix(rng, type, n_pred, n_embd), fc2 = random_matrix(rng, type, n_ff, n_pred);
            const pi_bk_matrix a = dev.put(fc1), b = dev.put(fc2);
            const float *h = dev.put(random_floats(rng, n_embd));
            int32_t *list = static_cast<int32_t *>(dev.alloc(n_ff * 4));
            uint32_t *cnt = static_cast<uint32_t *>(dev.alloc(8));
            const double us = time_us(dev, iters, [&] {
                dev.check(dev.ops().predict(dev.queue(), &a, &b, h, 0.0f, nullptr, list, cnt, nullptr, nullptr, nullptr),
                          "predict");
            });
            report("predict bench-7b " + std::string(type_name(type)) + " (fc1 1024x4096, fc2 11008x1024)",
                   double(fc1.bytes.size() + fc2.bytes.size()), us);
            dev.release();
        }
        // Sparse FFN at ~12% active. Gate rows and x are positive so every listed neuron reads its gate, up and
        // down rows: bytes = 3 * active * row bytes exactly.
        for (uint32_t type : {uint32_t(PI_BK_F16), uint32_t(PI_BK_Q8_0), uint32_t(PI_BK_Q4_0)}) {
            for (double frac : {0.12, 1.0}) {
                HostMatrix gate = random_matrix(rng, type, n_ff, n_embd);
                if (type == PI_BK_F16) {
                    for (size_t i = 1; i < gate.bytes.size(); i += 2) gate.bytes[i] &= 0x7f;  // clear the sign bits
                } else {
                    const size_t blk = type == PI_BK_Q8_0 ? 34 : 18;
                    for (size_t r = 0; r < n_ff; ++r) {
                        for (size_t b = 0; b < n_embd / 32; ++b) {
                            uint8_t *p = gate.bytes.data() + r * gate.row_stride + b * blk;
                            p[1] &= 0x7f;
                            for (size_t i = 2; i < blk; ++i) p[i] = type == PI_BK_Q8_0 ? (p[i] & 0x7f) : (p[i] | 0x88);
                        }
                    }
                }
                const HostMatrix up = random_matrix(rng, type, n_ff, n_embd), down = random_matrix(rng, type, n_ff, n_embd);
                std::vector<float> xv = random_floats(rng, n_embd);
                for (float &v : xv) v = std::fabs(v) + 0.1f;
                std::vector<int32_t> list;
                for (uint64_t i = 0; i < n_ff; ++i) {
                    if (frac >= 1.0 || rng() % 1000 < uint64_t(frac * 1000)) list.push_back(int32_t(i));
                }
                pi_bk_ffn f{};
                f.gate = dev.put(gate);
                f.up = dev.put(up);
                f.down_t = dev.put(down);
                f.activation = PI_BK_ACT_REGLU;
                const float *x = dev.put(xv);
                const int32_t *l = dev.put(list);
                const uint32_t *n = dev.put(std::vector<uint32_t>{uint32_t(list.size())});
                float *y = dev.put(std::vector<float>(n_embd, 0.0f));
                const double us = time_us(dev, iters, [&] {
                    dev.check(dev.ops().sparse_ffn(dev.queue(), &f, x, l, n, y), "sparse_ffn");
                });
                report("sparse_ffn " + std::string(type_name(type)) + " reglu 4096/11008 active " +
                           std::to_string(list.size()) + " (" + std::to_string(int(frac * 100)) + "%)",
                       3.0 * double(list.size() * row_bytes(type, n_embd)), us);
                dev.release();
            }
        }
        // A dense decode layer as the executor enqueues it (norm-fused q|k|v, attention, o added to x, norm-fused
        // gate|up GLU, down added to x), over 8 layers' weights in turn (3.2 GB, so nothing stays in L2): the time
        // per layer and the weight bytes over it, launches and the gaps between kernels included.
        if (PI_BK_HAS_OP(&dev.ops(), matmul_rmsnorm) && PI_BK_HAS_OP(&dev.ops(), attention_decode) &&
            PI_BK_HAS_OP(&dev.ops(), matmul_add)) {
            constexpr int kLayers = 8;
            const uint32_t pos = 63;
            const HostMatrix qkv_h = random_matrix(rng, PI_BK_F16, 3 * n_embd, n_embd, 0.01f),
                             o_h = random_matrix(rng, PI_BK_F16, n_embd, n_embd, 0.01f),
                             glu_h = random_matrix(rng, PI_BK_F16, 2 * n_ff, n_embd, 0.01f),
                             down_h = random_matrix(rng, PI_BK_F16, n_embd, n_ff, 0.01f);
            pi_bk_matrix qkv[kLayers], o[kLayers], glu[kLayers], down[kLayers];
            for (int l = 0; l < kLayers; ++l) {
                qkv[l] = dev.put(qkv_h), o[l] = dev.put(o_h), glu[l] = dev.put(glu_h), down[l] = dev.put(down_h);
            }
            const std::vector<uint8_t> zeros((pos + 1) * n_embd * 2, 0);
            void *kc = dev.put(zeros.data(), zeros.size()), *vc = dev.put(zeros.data(), zeros.size());
            float *x = dev.put(random_floats(rng, n_embd));
            const float *g = dev.put(random_floats(rng, n_embd));
            auto *t = static_cast<float *>(dev.alloc(3 * n_embd * 4));
            auto *att = static_cast<float *>(dev.alloc(n_embd * 4));
            auto *a = static_cast<float *>(dev.alloc(n_ff * 4));
            pi_bk_decode_attention at = bench_attention(kc, vc, pos);
            at.next_weights_bytes = o_h.bytes.size();  // the executor names the o product's weights
            const double us = time_us(dev, std::max(1, iters / 8), [&] {
                for (int l = 0; l < kLayers; ++l) {
                    pi_bk_queue *q = dev.queue();
                    at.next_weights = o[l].data;
                    dev.check(dev.ops().matmul_rmsnorm(q, &qkv[l], x, g, 1e-5f, PI_BK_NO_ACTIVATION, t), "qkv");
                    dev.check(dev.ops().attention_decode(q, &at, t, t + n_embd, t + 2 * n_embd, pos, nullptr, att),
                              "attention_decode");
                    dev.check(dev.ops().matmul_add(q, &o[l], att, 1, x), "o");
                    dev.check(dev.ops().matmul_rmsnorm(q, &glu[l], x, g, 1e-5f, PI_BK_ACT_SILU, a), "gate|up");
                    dev.check(dev.ops().matmul_add(q, &down[l], a, 1, x), "down");
                }
            });
            const double layer_bytes = double(qkv_h.bytes.size() + o_h.bytes.size() + glu_h.bytes.size() +
                                              down_h.bytes.size());
            report("dense decode layer F16 bench-7b (8 layers in turn), per layer", layer_bytes, us / kLayers);
            dev.release();
        }
        for (uint32_t pos : {63u, 511u, 2047u}) {
            const uint32_t n_head = 32, hd = 128;
            const uint64_t kv_dim = uint64_t(n_head) * hd;
            void *kc = dev.alloc((pos + 1) * kv_dim * 2), *vc = dev.alloc((pos + 1) * kv_dim * 2);
            const std::vector<uint8_t> zeros((pos + 1) * kv_dim * 2, 0);
            dev.check(dev.ops().copy_to_device(dev.queue(), kc, zeros.data(), zeros.size()), "copy");
            dev.check(dev.ops().copy_to_device(dev.queue(), vc, zeros.data(), zeros.size()), "copy");
            const float *q = dev.put(random_floats(rng, kv_dim));
            float *o = static_cast<float *>(dev.alloc(kv_dim * 4));
            const double us = time_us(dev, iters, [&] {
                dev.check(dev.ops().attention(dev.queue(), q, kc, vc, PI_BK_KV_F16, n_head, n_head, hd, pos, 1,
                                              0.088f, o),
                          "attention");
            });
            report("attention decode kv-f16 32x128 n_pos=" + std::to_string(pos + 1), 2.0 * zeros.size(), us);
            if (PI_BK_HAS_OP(&dev.ops(), attention_decode)) {
                const pi_bk_decode_attention a = bench_attention(kc, vc, pos);
                const float *k = dev.put(random_floats(rng, kv_dim)), *v = dev.put(random_floats(rng, kv_dim));
                const double us2 = time_us(dev, iters, [&] {
                    dev.check(dev.ops().attention_decode(dev.queue(), &a, q, k, v, pos, nullptr, o), "attention_decode");
                });
                report("attention_decode (rope + store + attention) n_pos=" + std::to_string(pos + 1),
                       2.0 * zeros.size(), us2);
                // The decode step's pair: attention, then the o product (F16 4096 x 4096) added to x. Four o
                // matrices in turn (134 MB), so that no call finds its weights left in L2 by the call before (as in
                // a step, where 32 layers' weights pass between two reads of one).
                const HostMatrix wo_host = random_matrix(rng, PI_BK_F16, n_embd, n_embd, 1.0f, 0);
                pi_bk_matrix wo[4];
                for (pi_bk_matrix &m : wo) m = dev.put(wo_host);
                float *x = dev.put(random_floats(rng, n_embd));
                int turn = 0;
                const double us3 = time_us(dev, iters, [&] {
                    const pi_bk_matrix &w = wo[turn++ % 4];
                    dev.check(dev.ops().attention_decode(dev.queue(), &a, q, k, v, pos, nullptr, o), "attention_decode");
                    dev.check(dev.ops().matmul_add(dev.queue(), &w, o, 1, x), "matmul_add");
                });
                report("attention_decode + o F16 4096x4096 (4 matrices in turn) n_pos=" + std::to_string(pos + 1),
                       2.0 * zeros.size() + double(wo[0].n_rows * wo[0].row_stride), us3);
            }
            dev.release();
        }
    } catch (const std::exception &e) {
        std::printf("FAIL: %s\n", e.what());
        return 1;
    }
    return 0;
}
