// matmul, embedding, add, ffn_activation.
#include <cmath>
#include <functional>

#include "cases.h"

namespace pi::conformance {
namespace {

std::string dims(std::initializer_list<uint64_t> v, const char *names) {
    // names: one letter per value, e.g. "rcn" -> "r=.. c=.. n=.."
    std::string s;
    size_t i = 0;
    for (uint64_t x : v) {
        if (!s.empty()) s += ' ';
        s += names[i++];
        s += '=';
        s += std::to_string(x);
    }
    return s;
}

bool quantized(uint32_t t) { return t == PI_BK_Q8_0 || t == PI_BK_Q4_0; }

// One product on both devices, the candidate's result against the reference's (relative L2). y starts as y0, or
// uninitialized memory of y_count floats when y0 is empty (the product overwrites it).
using Product = std::function<int32_t(Device &, const pi_bk_matrix *w, const float *x, float *y)>;
double compare_product(Env &env, const char *what, const HostMatrix &w, const std::vector<float> &x,
                       const std::vector<float> &y0, uint64_t y_count, const Product &product) {
    std::vector<float> out[2];
    Device *devs[2] = {&env.ref, &env.cand};
    for (int d = 0; d < 2; ++d) {
        Device &dev = *devs[d];
        const pi_bk_matrix wm = dev.put(w);
        const float *xd = dev.put(x);
        float *y = y0.empty() ? static_cast<float *>(dev.alloc(y_count * 4)) : dev.put(y0);
        dev.check(product(dev, &wm, xd, y), what);
        out[d] = dev.get(y, y_count);
    }
    return relative_error(out[1], out[0]);
}

// y = x . W^T. Both sides round x to 8-bit blocks for Q8_0/Q4_0 (backends/backend.h) and sum exactly-converted
// weights in binary32; only the order of the additions differs. Tolerance: 2e-5 relative L2, about 100 ulp of the
// per-element error budget of a 4096-term f32 dot with random signs (measured differences are ~1e-7..1e-6).
void matmul_cases(Env &env) {
    struct Shape {
        uint64_t rows, cols, n, pad;
        bool float_only;
    };
    const Shape shapes[] = {
        {64, 256, 1, 0, false},    {300, 352, 1, 0, false},   {1000, 4096, 1, 0, false}, {77, 96, 3, 16, false},
        {129, 352, 5, 0, false},   {130, 416, 24, 0, false},  {50, 100, 1, 0, true},     {33, 100, 20, 0, true},
        {1, 64, 1, 0, false},
    };
    for (uint32_t type : all_weight_types()) {
        for (const Shape &s : shapes) {
            if (s.float_only && quantized(type)) continue;  // quantized rows are whole 32-weight blocks
            env.row("matmul", type_name(type), dims({s.rows, s.cols, s.n, s.pad}, "rcnp"), 2e-5, [&](std::string *) {
                const HostMatrix w = random_matrix(env.rng, type, s.rows, s.cols, 1.0f, s.pad);
                const std::vector<float> x = random_floats(env.rng, s.n * s.cols);
                const auto product = [&](Device &dev, auto *wm, auto *xd, float *y) {
                    return dev.ops().matmul(dev.queue(), wm, xd, s.n, y);
                };
                return compare_product(env, "matmul", w, x, {}, s.n * s.rows, product);
            });
        }
    }
}

// y = x . W (W stored transposed, e.g. down_t), x as given for every type. The CPU adds row by row (axpy), a GPU
// through a GEMM (16-bit weights: x split into two 16-bit parts, see backends/cuda/matmul.cu): only rounding order
// and x's ~22 (F16) / ~16 (BF16) kept bits differ. Tolerance as matmul's: 2e-5 relative L2 (BF16's split leaves
// ~2^-17 relative per x element, ~1e-6 in the result). Shapes: a single token, widths not multiples of 8 or 256,
// padded rows, the 7B down_t shape at a prompt width. Skipped (no row) when the candidate's table lacks the entry.
void matmul_t_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), matmul_t)) return;
    struct Shape {
        uint64_t rows, cols, n, pad;
        bool float_only;
    };
    const Shape shapes[] = {
        {64, 256, 1, 0, false}, {300, 352, 5, 0, false}, {77, 96, 3, 16, false},
        {33, 100, 20, 0, true}, {1100, 4096, 40, 0, false},
    };
    for (uint32_t type : all_weight_types()) {
        for (const Shape &s : shapes) {
            if (s.float_only && quantized(type)) continue;
            env.row("matmul_t", type_name(type), dims({s.rows, s.cols, s.n, s.pad}, "rcnp"), 2e-5, [&](std::string *) {
                const HostMatrix w = random_matrix(env.rng, type, s.rows, s.cols, 1.0f, s.pad);
                const std::vector<float> x = random_floats(env.rng, s.n * s.rows);
                const auto product = [&](Device &dev, auto *wm, auto *xd, float *y) {
                    return dev.ops().matmul_t(dev.queue(), wm, xd, s.n, y);
                };
                return compare_product(env, "matmul_t", w, x, {}, s.n * s.cols, product);
            });
        }
    }
}

// y += x . W^T (decode sizes: the residual connection fused into the product), on a y that holds random values
// before the call; same tolerance as matmul. Skipped when the candidate's table lacks the entry.
void matmul_add_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), matmul_add)) return;
    // Its own random stream: rows added later must not change the inputs of the existing ones (a Q8_0 predictor row
    // sits near its tolerance for some inputs: 8-bit rounding of the hidden layer is discontinuous).
    decltype(env.rng) rng(20261126);
    const uint64_t shapes[][3] = {{4096, 4096, 1}, {100, 352, 1}, {300, 256, 4}, {64, 11008, 1}};
    for (uint32_t type : all_weight_types()) {
        for (const auto &s : shapes) {
            const uint64_t rows = s[0], cols = s[1], n = s[2];
            env.row("matmul_add", type_name(type), dims({rows, cols, n}, "rcn"), 2e-5, [&](std::string *) {
                const HostMatrix w = random_matrix(rng, type, rows, cols);
                const std::vector<float> x = random_floats(rng, n * cols), y0 = random_floats(rng, n * rows);
                const auto product = [&](Device &dev, auto *wm, auto *xd, float *y) {
                    return dev.ops().matmul_add(dev.queue(), wm, xd, n, y);
                };
                return compare_product(env, "matmul_add", w, x, y0, n * rows, product);
            });
        }
    }
}

// out = act(gate . x, up . x) over a stacked [gate; up] matrix (one token): the product's rounding as matmul's plus
// the activation's (SiLU: a few ulp), so matmul's tolerance. Its own random stream, like matmul_add's.
void matmul_glu_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), matmul_glu)) return;
    decltype(env.rng) rng(20261127);
    const char *names[] = {"silu", "reglu", "drelu"};
    const uint64_t shapes[][2] = {{64, 256}, {300, 352}, {1000, 4096}};
    for (uint32_t type : all_weight_types()) {
        for (const auto &s : shapes) {
            for (uint32_t act = PI_BK_ACT_SILU; act < PI_BK_ACT_RELU; ++act) {
                const uint64_t rows = s[0], cols = s[1];
                env.row("matmul_glu", std::string(type_name(type)) + " " + names[act], dims({rows, cols}, "rc"), 2e-5,
                        [&](std::string *) {
                            const HostMatrix w = random_matrix(rng, type, 2 * rows, cols);
                            const std::vector<float> x = random_floats(rng, cols);
                            const auto product = [&](Device &dev, auto *wm, auto *xd, float *y) {
                                return dev.ops().matmul_glu(dev.queue(), wm, act, xd, y);
                            };
                            return compare_product(env, "matmul_glu", w, x, {}, rows, product);
                        });
            }
        }
    }
}

// y = w . rmsnorm(x) * g (a plain product, or a GLU over [gate; up]): the reference normalizes and multiplies; a
// backend may apply the norm's scale to each sum instead (float rounding apart). matmul's tolerance.
void matmul_rmsnorm_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), matmul_rmsnorm)) return;
    decltype(env.rng) rng(20261129);
    // 301 rows: a plain product with an odd row count.
    const uint64_t shapes[][2] = {{64, 256}, {300, 352}, {301, 512}, {1000, 4096}};
    for (uint32_t type : all_weight_types()) {
        for (const auto &s : shapes) {
            for (uint32_t act : {uint32_t(PI_BK_NO_ACTIVATION), uint32_t(PI_BK_ACT_SILU), uint32_t(PI_BK_ACT_REGLU)}) {
                const uint64_t rows = s[0], cols = s[1];
                const bool glu = act != PI_BK_NO_ACTIVATION;
                const std::string name = std::string(type_name(type)) +
                                         (act == PI_BK_ACT_SILU ? " glu-silu" : act == PI_BK_ACT_REGLU ? " glu-reglu" : "");
                env.row("matmul_rmsnorm", name, dims({rows, cols}, "rc"), 2e-5, [&](std::string *) {
                    const HostMatrix w = random_matrix(rng, type, glu ? 2 * rows : rows, cols);
                    std::vector<float> x = random_floats(rng, cols, 3.0f);
                    const std::vector<float> g = random_floats(rng, cols);
                    std::vector<float> out[2];
                    Device *devs[2] = {&env.ref, &env.cand};
                    for (int d = 0; d < 2; ++d) {
                        Device &dev = *devs[d];
                        const pi_bk_matrix wm = dev.put(w);
                        const float *xd = dev.put(x), *gd = dev.put(g);
                        float *y = static_cast<float *>(dev.alloc(rows * 4));
                        dev.check(dev.ops().matmul_rmsnorm(dev.queue(), &wm, xd, gd, 1e-5f, act, y), "matmul_rmsnorm");
                        out[d] = dev.get(y, rows);
                    }
                    return relative_error(out[1], out[0]);
                });
            }
        }
    }
}

// A decode step's chain of products enqueued back to back with no host synchronization in between, each reading the
// previous one's output: norm-fused product, residual product (few rows, split), norm-fused GLU, residual product,
// plain product, twice over. It checks that a kernel never reads its input (or overwrites a buffer) before the
// kernel that writes (or reads) it has finished -- what any overlap of launches (programmatic dependent launch,
// more than one stream) must keep. Errors compound over ten products and ReGLU's cut at zero: tolerance 1e-4 (quantized: 1e-2, where an
// order-of-addition difference may move 8-bit roundings of activations: 1.3e-3 measured for Q4_0 between the CPU
// ISA levels). A kernel that reads too early returns values off by O(1).
void decode_chain_cases(Env &env) {
    if (!PI_BK_HAS_OP(&env.cand.ops(), matmul_rmsnorm) || !PI_BK_HAS_OP(&env.cand.ops(), matmul_add)) return;
    decltype(env.rng) rng(20261130);
    const uint64_t d = 4096, q = 1024, ff = 2816, head = 3000;
    for (uint32_t type : all_weight_types()) {
        env.row("decode_chain", type_name(type), dims({d, q, ff, head}, "dqfh"), quantized(type) ? 1e-2 : 1e-4,
                [&](std::string *) {
                    const HostMatrix w_in = random_matrix(rng, type, q, d, 0.05f), w_back = random_matrix(rng, type, d, q, 0.05f),
                                     w_glu = random_matrix(rng, type, 2 * ff, d, 0.05f),
                                     w_down = random_matrix(rng, type, d, ff, 0.05f),
                                     w_head = random_matrix(rng, type, head, d, 0.05f);
                    const std::vector<float> x = random_floats(rng, d), g = random_floats(rng, d);
                    std::vector<float> out[2];
                    Device *devs[2] = {&env.ref, &env.cand};
                    for (int k = 0; k < 2; ++k) {
                        Device &dev = *devs[k];
                        const pi_bk_matrix in = dev.put(w_in), back = dev.put(w_back), glu = dev.put(w_glu),
                                           down = dev.put(w_down), hm = dev.put(w_head);
                        float *h = dev.put(x);
                        const float *gd = dev.put(g);
                        auto *t = static_cast<float *>(dev.alloc(q * 4));
                        auto *a = static_cast<float *>(dev.alloc(ff * 4));
                        auto *y = static_cast<float *>(dev.alloc(head * 4));
                        pi_bk_queue *qu = dev.queue();
                        for (int round = 0; round < 2; ++round) {
                            dev.check(dev.ops().matmul_rmsnorm(qu, &in, h, gd, 1e-5f, PI_BK_NO_ACTIVATION, t), "norm product");
                            dev.check(dev.ops().matmul_add(qu, &back, t, 1, h), "residual product");
                            dev.check(dev.ops().matmul_rmsnorm(qu, &glu, h, gd, 1e-5f, PI_BK_ACT_REGLU, a), "norm GLU");
                            dev.check(dev.ops().matmul_add(qu, &down, a, 1, h), "down product");
                            dev.check(dev.ops().matmul(qu, &hm, h, 1, y), "head product");
                        }
                        out[k] = dev.get(y, head);
                    }
                    return relative_error(out[1], out[0]);
                });
    }
}

// Rows of the table dequantized: exact on both sides (tolerance 0).
void embedding_cases(Env &env) {
    for (uint32_t type : all_weight_types()) {
        for (uint64_t cols : {uint64_t(352), uint64_t(4096)}) {
            env.row("embedding", type_name(type), dims({100, cols, 6}, "rcn"), 0.0, [&](std::string *) {
                const HostMatrix table = random_matrix(env.rng, type, 100, cols);
                const std::vector<int32_t> tokens = {0, 99, 5, 5, 42, 17};
                std::vector<float> out[2];
                Device *devs[2] = {&env.ref, &env.cand};
                for (int d = 0; d < 2; ++d) {
                    Device &dev = *devs[d];
                    const pi_bk_matrix t = dev.put(table);
                    const int32_t *tok = dev.put(tokens);
                    float *y = static_cast<float *>(dev.alloc(tokens.size() * cols * 4));
                    dev.check(dev.ops().embedding(dev.queue(), &t, tok, tokens.size(), y), "embedding");
                    out[d] = dev.get(y, tokens.size() * cols);
                }
                return relative_error(out[1], out[0]);
            });
        }
    }
}

// y += x (a bias row when x_row_stride is 0): one float addition per element, exact (tolerance 0).
void add_cases(Env &env) {
    for (uint64_t stride : {uint64_t(0), uint64_t(1000), uint64_t(1024)}) {
        env.row("add", "f32", dims({3, 1000, stride}, "nds"), 0.0, [&](std::string *) {
            const uint64_t n = 3, dim = 1000;
            const std::vector<float> y0 = random_floats(env.rng, n * dim);
            const std::vector<float> x = random_floats(env.rng, stride ? n * stride : dim);
            std::vector<float> out[2];
            Device *devs[2] = {&env.ref, &env.cand};
            for (int d = 0; d < 2; ++d) {
                Device &dev = *devs[d];
                float *y = dev.put(y0);
                const float *xd = dev.put(x);
                dev.check(dev.ops().add(dev.queue(), y, xd, n, dim, stride), "add");
                out[d] = dev.get(y, n * dim);
            }
            return relative_error(out[1], out[0]);
        });
    }
}

// Elementwise activations: SiLU uses exp (libm vs the device's expf: a few ulp), the ReLU family is exact.
// Tolerance 1e-6 relative L2.
void activation_cases(Env &env) {
    const char *names[] = {"silu", "reglu", "drelu", "relu"};
    for (uint32_t act = PI_BK_ACT_SILU; act <= PI_BK_ACT_RELU; ++act) {
        env.row("ffn_activation", names[act], dims({3, 1000}, "nd"), 1e-6, [&](std::string *) {
            const uint64_t n = 3, dim = 1000;
            const std::vector<float> g = random_floats(env.rng, n * dim, 3.0f), u = random_floats(env.rng, n * dim);
            std::vector<float> out[2];
            Device *devs[2] = {&env.ref, &env.cand};
            for (int d = 0; d < 2; ++d) {
                Device &dev = *devs[d];
                const float *gd = act == PI_BK_ACT_RELU ? nullptr : dev.put(g);
                const float *ud = dev.put(u);
                float *y = static_cast<float *>(dev.alloc(n * dim * 4));
                dev.check(dev.ops().ffn_activation(dev.queue(), act, gd, ud, n, dim, y), "ffn_activation");
                out[d] = dev.get(y, n * dim);
            }
            return relative_error(out[1], out[0]);
        });
    }
}

}  // namespace

void dense_cases(Env &env) {
    matmul_cases(env);
    matmul_t_cases(env);
    matmul_add_cases(env);
    matmul_glu_cases(env);
    matmul_rmsnorm_cases(env);
    decode_chain_cases(env);
    embedding_cases(env);
    add_cases(env);
    activation_cases(env);
}

}  // namespace pi::conformance
