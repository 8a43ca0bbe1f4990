#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "backends/cpu/token_ops.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/layer_math.h"
#include "backends/cpu/matvec.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/row_convert.h"
#include "backends/cpu/thread_pool.h"
#include "common/error.h"

struct pi_bk_context {
    explicit pi_bk_context(int n_threads, pi::cpu::IsaLevel level)
        : pool(std::max(1, n_threads)), isa(level), float_gemm(&pool, gemm_options(true, level)),
          quant_gemm(&pool, gemm_options(false, level)), ffn(level) {}

    static pi::cpu::GemmOptions gemm_options(bool onednn, pi::cpu::IsaLevel level) {
        pi::cpu::GemmOptions o;
        o.use_onednn = onednn && pi::cpu::gemm_onednn_compiled();
        o.isa = level;
        return o;
    }

    pi::cpu::ThreadPool pool;
    pi::cpu::IsaLevel isa;
    pi::cpu::Gemm float_gemm, quant_gemm;  // quantized weights: the blocked GEMM with the Q8 activation rounding
    pi::cpu::TokenOps ffn;                 // one-token products with their scratch
    std::vector<float> scores;             // attention scratch, one row per thread
};
struct pi_bk_queue {
    pi_bk_context *ctx;
};
struct pi_bk_event {};
struct pi_bk_buffer {
    void *data;
};

namespace pi::cpu {
namespace {

thread_local std::string t_last_error;

// Runs one entry point: pi::Error and allocation failures become status codes with a message, nothing escapes.
template <typename F>
int32_t guarded(const char *what, F &&body) {
    try {
        body();
        t_last_error.clear();
        return PI_BK_OK;
    } catch (const pi::Error &e) {
        t_last_error = std::string(what) + ": " + e.what();
        switch (e.status()) {
            case PI_ERR_OUT_OF_MEMORY: return PI_BK_ERR_OUT_OF_MEMORY;
            case PI_ERR_UNSUPPORTED: return PI_BK_ERR_UNSUPPORTED;
            default: return PI_BK_ERR_INVALID_ARGUMENT;
        }
    } catch (const std::bad_alloc &) {
        t_last_error = std::string(what) + ": out of memory";
        return PI_BK_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        t_last_error = std::string(what) + ": " + e.what();
        return PI_BK_ERR_DEVICE;
    }
}

void require(bool ok, const char *message) {
    if (!ok) fail(PI_ERR_INVALID_ARGUMENT, message);
}

WeightMatrix matrix(const pi_bk_matrix *m) {
    require(m != nullptr, "null weight matrix");
    WeightMatrix w;
    w.data = m->data;
    w.type = static_cast<WeightType>(m->type);
    w.n_rows = m->n_rows;
    w.n_cols = m->n_cols;
    w.row_stride = m->row_stride;
    check_weight_matrix(w, "weight matrix");
    return w;
}

IsaLevel level_of(int32_t requested) {
    if (requested < 0) return active_isa_level();
    require(requested <= static_cast<int32_t>(IsaLevel::Avx512), "isa_level must be -1, 0, 1 or 2");
    const IsaLevel level = static_cast<IsaLevel>(requested);
    if (level > best_isa_level()) fail(PI_ERR_UNSUPPORTED, "this CPU lacks ISA level " + isa_level_name(level));
    return level;
}

int32_t device_count(char *, size_t) { return 1; }
const char *last_error() { return t_last_error.c_str(); }

int32_t context_create(const pi_bk_context_params *params, pi_bk_context **out) {
    return guarded("context_create", [&] {
        require(params && out && params->struct_size >= sizeof(pi_bk_context_params), "bad context_create arguments");
        *out = new pi_bk_context(params->n_threads, level_of(params->isa_level));
    });
}
void context_free(pi_bk_context *ctx) { delete ctx; }

int32_t device_info(pi_bk_context *ctx, pi_bk_device_info *out) {
    return guarded("device_info", [&] {
        require(ctx && out && out->struct_size >= sizeof(pi_bk_device_info), "bad device_info arguments");
        const std::string name = "cpu (" + isa_level_name(ctx->isa) + ", " + std::to_string(ctx->pool.size()) +
                                 " threads)";
        std::snprintf(out->name, sizeof out->name, "%s", name.c_str());
        out->total_bytes = out->free_bytes = out->context_bytes = 0;  // host memory is not budgeted
    });
}

int32_t buffer_alloc(pi_bk_context *ctx, uint64_t bytes, uint32_t memory, pi_bk_buffer **out) {
    return guarded("buffer_alloc", [&] {
        require(ctx && out, "null argument");
        require(memory == PI_BK_MEMORY_DEVICE || memory == PI_BK_MEMORY_HOST_PINNED, "unknown memory kind");
        void *p = std::aligned_alloc(64, std::max<uint64_t>(64, (bytes + 63) / 64 * 64));
        if (!p) fail(PI_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes");
        *out = new pi_bk_buffer{p};
    });
}
void buffer_free(pi_bk_buffer *b) {
    if (!b) return;
    std::free(b->data);
    delete b;
}
void *buffer_address(pi_bk_buffer *b) { return b ? b->data : nullptr; }

int32_t queue_create(pi_bk_context *ctx, pi_bk_queue **out) {
    return guarded("queue_create", [&] {
        require(ctx && out, "null argument");
        *out = new pi_bk_queue{ctx};
    });
}
void queue_free(pi_bk_queue *q) { delete q; }
int32_t queue_synchronize(pi_bk_queue *q) { return q ? PI_BK_OK : PI_BK_ERR_INVALID_ARGUMENT; }
int32_t event_create(pi_bk_context *ctx, pi_bk_event **out) {
    return guarded("event_create", [&] {
        require(ctx && out, "null argument");
        *out = new pi_bk_event{};
    });
}
void event_free(pi_bk_event *e) { delete e; }
int32_t event_record(pi_bk_event *e, pi_bk_queue *q) { return e && q ? PI_BK_OK : PI_BK_ERR_INVALID_ARGUMENT; }
int32_t queue_wait_event(pi_bk_queue *q, pi_bk_event *e) { return e && q ? PI_BK_OK : PI_BK_ERR_INVALID_ARGUMENT; }
int32_t event_synchronize(pi_bk_event *e) { return e ? PI_BK_OK : PI_BK_ERR_INVALID_ARGUMENT; }

int32_t copy(pi_bk_queue *q, void *dst, const void *src, uint64_t bytes) {
    return guarded("copy", [&] {
        require(q && (bytes == 0 || (dst && src)), "null argument");
        if (bytes) std::memmove(dst, src, bytes);
    });
}

int32_t matmul(pi_bk_queue *q, const pi_bk_matrix *wm, const float *x, uint64_t n, float *y) {
    return guarded("matmul", [&] {
        require(q && x && y && n > 0, "null argument or n == 0");
        const WeightMatrix w = matrix(wm);
        pi_bk_context &c = *q->ctx;
        if (n == 1) {
            c.ffn.matvec(w, x, 0, w.n_rows, y, &c.pool);
        } else {
            (weight_type_is_quantized(w.type) ? c.quant_gemm : c.float_gemm).multiply(w, x, n, w.n_cols, y, w.n_rows);
        }
    });
}

// y += x . W^T: matmul into a scratch, then the add (the same sums as matmul, each added with one rounding).
int32_t matmul_add(pi_bk_queue *q, const pi_bk_matrix *wm, const float *x, uint64_t n, float *y) {
    std::vector<float> product;
    const int32_t status = guarded("matmul_add", [&] {
        require(q && wm && x && y && n > 0, "null argument or n == 0");
        product.assign(n * wm->n_rows, 0.0f);
    });
    if (status != PI_BK_OK) return status;
    if (const int32_t s = matmul(q, wm, x, n, product.data())) return s;
    for (size_t i = 0; i < product.size(); ++i) y[i] += product[i];
    return PI_BK_OK;
}

// y (n x C) = x (n x R) . W for W of R rows of C: per token the axpy over all rows (the sparse FFN's down product
// with every neuron listed), so a prompt through down_t matches what decode computes, bit for bit.
int32_t matmul_t(pi_bk_queue *q, const pi_bk_matrix *wm, const float *x, uint64_t n, float *y) {
    return guarded("matmul_t", [&] {
        require(q && x && y && n > 0, "null argument or n == 0");
        const WeightMatrix w = matrix(wm);
        pi_bk_context &c = *q->ctx;
        for (uint64_t t = 0; t < n; ++t) {
            float *yt = y + t * w.n_cols;
            std::fill(yt, yt + w.n_cols, 0.0f);
            axpy_rows(w, x + t * w.n_rows, nullptr, w.n_rows, yt, &c.pool, c.isa);
        }
    });
}

int32_t predict(pi_bk_queue *q, const pi_bk_matrix *fc1, const pi_bk_matrix *fc2, const float *h, float threshold,
                const int32_t *slot, int32_t *list, uint32_t *n_list, int32_t *other, uint32_t *n_other,
                float *scores) {
    return guarded("predict", [&] {
        require(q && h && list && n_list && (!slot || (other && n_other)), "null argument");
        pi_bk_context &c = *q->ctx;
        const std::vector<uint32_t> &active = c.ffn.predict(matrix(fc1), matrix(fc2), h, threshold, scores, &c.pool);
        uint32_t n0 = 0, n1 = 0;
        for (uint32_t i : active) {
            if (!slot) list[n0++] = static_cast<int32_t>(i);
            else if (slot[i] >= 0) list[n0++] = slot[i];
            else other[n1++] = static_cast<int32_t>(i);
        }
        *n_list = n0;
        if (slot) *n_other = n1;
    });
}

int32_t sparse_ffn(pi_bk_queue *q, const pi_bk_ffn *f, const float *x, const int32_t *list, const uint32_t *n_list,
                   float *y) {
    return guarded("sparse_ffn", [&] {
        require(q && f && x && y && n_list && (*n_list == 0 || list), "null argument");
        SparseFfnWeights w;
        w.gate = f->gate.data ? matrix(&f->gate) : WeightMatrix{};
        w.up = matrix(&f->up);
        w.down_t = matrix(&f->down_t);
        w.up_bias = f->up_bias;
        require(f->activation <= PI_BK_ACT_RELU, "unknown activation");
        w.activation = static_cast<FfnActivation>(f->activation);
        require((f->activation == PI_BK_ACT_RELU) == (w.gate.data == nullptr), "a gate exactly when the activation has one");
        pi_bk_context &c = *q->ctx;
        c.ffn.sparse_ffn(w, x, reinterpret_cast<const uint32_t *>(list), *n_list, y, &c.pool);
    });
}

int32_t ffn_activation(pi_bk_queue *q, uint32_t activation, const float *gate, const float *up, uint64_t n,
                       uint64_t dim, float *out) {
    return guarded("ffn_activation", [&] {
        require(q && up && out && (gate || activation == PI_BK_ACT_RELU), "null argument");
        require(activation <= PI_BK_ACT_RELU, "unknown activation");
        apply_activation(static_cast<FfnActivation>(activation), gate, up, n * dim, out);
    });
}

int32_t norm(pi_bk_queue *q, const float *x, const float *w, const float *b, uint64_t n, uint64_t dim, float eps,
             float *y) {
    return guarded("norm", [&] {
        require(q && x && w && y && dim > 0 && dim <= UINT32_MAX, "null argument or bad dim");
        for (uint64_t t = 0; t < n; ++t) {
            if (b) layernorm(y + t * dim, x + t * dim, w, b, static_cast<uint32_t>(dim), eps);
            else rmsnorm(y + t * dim, x + t * dim, w, static_cast<uint32_t>(dim), eps);
        }
    });
}

int32_t rope_op(pi_bk_queue *q, float *x, uint64_t n, uint64_t row_stride, uint32_t n_heads, uint32_t head_dim,
                uint32_t rope_dim, uint32_t pos0, float freq_base, uint32_t mode) {
    return guarded("rope", [&] {
        require(q && x && rope_dim <= head_dim && rope_dim % 2 == 0, "null argument or bad rope_dim");
        require(mode == PI_BK_ROPE_NORMAL || mode == PI_BK_ROPE_NEOX, "unknown rope mode");
        const RopeStyle style = mode == PI_BK_ROPE_NEOX ? RopeStyle::Neox : RopeStyle::Normal;
        for (uint64_t t = 0; t < n; ++t) {
            for (uint32_t h = 0; h < n_heads; ++h) {
                rope(x + t * row_stride + size_t(h) * head_dim, rope_dim, pos0 + static_cast<uint32_t>(t), freq_base, style);
            }
        }
    });
}

int32_t kv_store(pi_bk_queue *q, void *k_cache, void *v_cache, uint32_t kv_type, uint32_t kv_dim, uint32_t pos0,
                 uint64_t n, const float *k, const float *v, uint64_t row_stride) {
    return guarded("kv_store", [&] {
        require(q && k_cache && v_cache && k && v, "null argument");
        require(kv_type == PI_BK_KV_F16 || kv_type == PI_BK_KV_F32, "unknown KV type");
        const size_t elem = kv_type == PI_BK_KV_F16 ? 2 : 4;
        for (uint64_t t = 0; t < n; ++t) {
            const size_t at = (size_t(pos0) + t) * kv_dim * elem;
            uint8_t *kd = static_cast<uint8_t *>(k_cache) + at, *vd = static_cast<uint8_t *>(v_cache) + at;
            if (kv_type == PI_BK_KV_F32) {
                std::memcpy(kd, k + t * row_stride, kv_dim * sizeof(float));
                std::memcpy(vd, v + t * row_stride, kv_dim * sizeof(float));
            } else {
                convert_f32_to_f16(k + t * row_stride, kv_dim, reinterpret_cast<uint16_t *>(kd), q->ctx->isa);
                convert_f32_to_f16(v + t * row_stride, kv_dim, reinterpret_cast<uint16_t *>(vd), q->ctx->isa);
            }
        }
    });
}

int32_t attention(pi_bk_queue *q, const float *qv, const void *k_cache, const void *v_cache, uint32_t kv_type,
                  uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, uint64_t n, float scale,
                  float *out) {
    return guarded("attention", [&] {
        require(q && qv && k_cache && v_cache && out, "null argument");
        require(n_head_kv > 0 && n_head % n_head_kv == 0, "n_head must be a multiple of n_head_kv");
        require(kv_type == PI_BK_KV_F16 || kv_type == PI_BK_KV_F32, "unknown KV type");
        pi_bk_context &c = *q->ctx;
        const size_t n_pos_max = size_t(pos0) + n, q_dim = size_t(n_head) * head_dim;
        c.scores.resize(size_t(c.pool.size()) * n_pos_max);
        const uint32_t group = n_head / n_head_kv;
        c.pool.parallel_for(n * n_head, [&](size_t task, int thread) {
            const size_t t = task / n_head;
            const uint32_t h = static_cast<uint32_t>(task % n_head);
            attend_head(k_cache, v_cache, kv_type == PI_BK_KV_F16, size_t(n_head_kv) * head_dim,
                        size_t(h / group) * head_dim, head_dim, qv + t * q_dim + size_t(h) * head_dim,
                        pos0 + static_cast<uint32_t>(t) + 1, scale, &c.scores[size_t(thread) * n_pos_max],
                        out + t * q_dim + size_t(h) * head_dim, c.isa);
        });
    });
}

int32_t embedding(pi_bk_queue *q, const pi_bk_matrix *table, const int32_t *tokens, uint64_t n, float *out) {
    return guarded("embedding", [&] {
        require(q && tokens && out, "null argument");
        const WeightMatrix w = matrix(table);
        for (uint64_t t = 0; t < n; ++t) {
            require(tokens[t] >= 0 && size_t(tokens[t]) < w.n_rows, "token id outside the table");
            dequantize_rows(w, size_t(tokens[t]), size_t(tokens[t]) + 1, out + t * w.n_cols, w.n_cols, q->ctx->isa);
        }
    });
}

int32_t add(pi_bk_queue *q, float *y, const float *x, uint64_t n, uint64_t dim, uint64_t x_row_stride) {
    return guarded("add", [&] {
        require(q && y && x, "null argument");
        for (uint64_t t = 0; t < n; ++t) {
            const float *xr = x + t * x_row_stride;
            float *yr = y + t * dim;
            for (uint64_t i = 0; i < dim; ++i) yr[i] += xr[i];
        }
    });
}

// The three operations in sequence on copies of q and k (the operation leaves its inputs as they were).
int32_t attention_decode(pi_bk_queue *q, const pi_bk_decode_attention *a, const float *qv, const float *k,
                         const float *v, uint32_t pos, const uint32_t *pos_word, float *out) {
    std::vector<float> q_rot, k_rot;
    const int32_t status = guarded("attention_decode", [&] {
        require(q && a && qv && k && v && out, "null argument");
        if (pos_word) pos = *pos_word;  // operations run at the call: the word holds the position now
        require(pos < a->max_positions, "pos beyond the cache's max_positions");
        q_rot.assign(qv, qv + size_t(a->n_head) * a->head_dim);
        k_rot.assign(k, k + size_t(a->n_head_kv) * a->head_dim);
    });
    if (status != PI_BK_OK) return status;
    if (a->rope_dim > 0) {
        if (int32_t s = rope_op(q, q_rot.data(), 1, q_rot.size(), a->n_head, a->head_dim, a->rope_dim, pos,
                                a->rope_freq_base, a->rope_mode)) {
            return s;
        }
        if (int32_t s = rope_op(q, k_rot.data(), 1, k_rot.size(), a->n_head_kv, a->head_dim, a->rope_dim, pos,
                                a->rope_freq_base, a->rope_mode)) {
            return s;
        }
    }
    const uint32_t kv_dim = a->n_head_kv * a->head_dim;
    if (int32_t s = kv_store(q, a->k_cache, a->v_cache, a->kv_type, kv_dim, pos, 1, k_rot.data(), v, kv_dim)) return s;
    return attention(q, q_rot.data(), a->k_cache, a->v_cache, a->kv_type, a->n_head, a->n_head_kv, a->head_dim, pos, 1,
                     a->scale, out);
}

// matmul into a scratch of 2 x rows, then the activation (the same values as the two operations).
int32_t matmul_glu(pi_bk_queue *q, const pi_bk_matrix *wm, uint32_t activation, const float *x, float *out) {
    std::vector<float> gate_up;
    const int32_t status = guarded("matmul_glu", [&] {
        require(q && wm && x && out, "null argument");
        require(activation < PI_BK_ACT_RELU, "matmul_glu needs an activation with a gate");
        require(wm->n_rows % 2 == 0, "matmul_glu needs [gate; up]: an even number of rows");
        gate_up.assign(wm->n_rows, 0.0f);
    });
    if (status != PI_BK_OK) return status;
    if (int32_t s = matmul(q, wm, x, 1, gate_up.data())) return s;
    const uint64_t rows = wm->n_rows / 2;
    return ffn_activation(q, activation, gate_up.data(), gate_up.data() + rows, 1, rows, out);
}

// norm into a scratch, then matmul or matmul_glu (the values the operations in sequence give).
int32_t matmul_rmsnorm(pi_bk_queue *q, const pi_bk_matrix *wm, const float *x, const float *g, float eps,
                       uint32_t activation, float *y) {
    std::vector<float> xn;
    const int32_t status = guarded("matmul_rmsnorm", [&] {
        require(q && wm && x && g && y, "null argument");
        xn.assign(wm->n_cols, 0.0f);
    });
    if (status != PI_BK_OK) return status;
    if (int32_t s = norm(q, x, g, nullptr, 1, wm->n_cols, eps, xn.data())) return s;
    if (activation == PI_BK_NO_ACTIVATION) return matmul(q, wm, xn.data(), 1, y);
    return matmul_glu(q, wm, activation, xn.data(), y);
}

pi_backend_ops make_table() {
    pi_backend_ops t{};
    t.struct_size = sizeof(pi_backend_ops);
    t.interface_version = PI_BACKEND_INTERFACE_VERSION;
    t.name = "cpu";
    t.device_count = device_count;
    t.last_error = last_error;
    t.context_create = context_create;
    t.context_free = context_free;
    t.device_info = device_info;
    t.buffer_alloc = buffer_alloc;
    t.buffer_free = buffer_free;
    t.buffer_address = buffer_address;
    t.buffer_host_address = buffer_address;
    t.queue_create = queue_create;
    t.queue_free = queue_free;
    t.queue_synchronize = queue_synchronize;
    t.event_create = event_create;
    t.event_free = event_free;
    t.event_record = event_record;
    t.queue_wait_event = queue_wait_event;
    t.event_synchronize = event_synchronize;
    t.copy_to_device = copy;
    t.copy_to_host = copy;
    t.matmul = matmul;
    t.predict = predict;
    t.sparse_ffn = sparse_ffn;
    t.ffn_activation = ffn_activation;
    t.norm = norm;
    t.rope = rope_op;
    t.kv_store = kv_store;
    t.attention = attention;
    t.embedding = embedding;
    t.add = add;
    t.matmul_t = matmul_t;
    t.matmul_add = matmul_add;
    t.attention_decode = attention_decode;
    t.matmul_glu = matmul_glu;
    t.matmul_rmsnorm = matmul_rmsnorm;
    return t;
}

}  // namespace

const pi_backend_ops *cpu_backend_ops() {
    static const pi_backend_ops table = make_table();
    return &table;
}

}  // namespace pi::cpu
