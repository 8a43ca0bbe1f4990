#include "backends/cuda/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "backends/cuda/cuda_backend.h"

namespace pi::cuda {

struct OpProfile {
    struct Pending {
        std::string name;
        cudaEvent_t begin, end;
    };
    struct Total {
        uint64_t calls = 0;
        double ms = 0;
    };
    std::vector<Pending> pending;
    std::vector<cudaEvent_t> spare;
    std::map<std::string, Total> totals;
    cudaEvent_t first = nullptr, last = nullptr;  // span of all profiled work since the last collect
    double span_ms = 0;

    cudaEvent_t take() {
        if (!spare.empty()) {
            cudaEvent_t e = spare.back();
            spare.pop_back();
            return e;
        }
        cudaEvent_t e = nullptr;
        cudaEventCreate(&e);
        return e;
    }
};

namespace {

OpProfile *profile_of(pi_bk_queue *q) { return q ? static_cast<OpProfile *>(q->profile) : nullptr; }

OpProfile *ensure(pi_bk_queue *q) {
    if (!q) return nullptr;
    if (!q->profile) q->profile = new OpProfile;
    return profile_of(q);
}

// Times the work one call enqueues on the queue's stream.
class Scope {
public:
    Scope(pi_bk_queue *q, std::string name) : p_(ensure(q)), q_(q) {
        if (!p_) return;
        name_ = std::move(name);
        begin_ = p_->take();
        cudaEventRecord(begin_, q_->stream);
        if (!p_->first) p_->first = begin_;
    }
    ~Scope() {
        if (!p_) return;
        cudaEvent_t end = p_->take();
        cudaEventRecord(end, q_->stream);
        p_->pending.push_back({std::move(name_), begin_, end});
        p_->last = end;
    }

private:
    OpProfile *p_;
    pi_bk_queue *q_;
    std::string name_;
    cudaEvent_t begin_ = nullptr;
};

const char *type_name(uint32_t t) {
    switch (t) {
        case PI_BK_F32: return "f32";
        case PI_BK_F16: return "f16";
        case PI_BK_BF16: return "bf16";
        case PI_BK_Q8_0: return "q8_0";
        case PI_BK_Q4_0: return "q4_0";
    }
    return "?";
}

std::string matrix_name(const char *op, const pi_bk_matrix *w, uint64_t n) {
    char buf[96];
    if (!w) return op;
    std::snprintf(buf, sizeof buf, "%s %llux%llu %s n=%s", op, (unsigned long long)w->n_rows,
                  (unsigned long long)w->n_cols, type_name(w->type), n == 1 ? "1" : n <= 16 ? "<=16" : ">16");
    return buf;
}

// One wrapper per operation: the table's function, timed under a name.
template <auto F>
struct Timed;
template <typename... A, int32_t (*F)(pi_bk_queue *, A...)>
struct Timed<F> {
    static inline const char *name = "?";
    static int32_t call(pi_bk_queue *q, A... a) {
        Scope s(q, name);
        return F(q, a...);
    }
};

int32_t timed_matmul(pi_bk_queue *q, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    Scope s(q, matrix_name("matmul", w, n));
    return matmul(q, w, x, n, y);
}

int32_t timed_matmul_add(pi_bk_queue *q, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    Scope s(q, matrix_name("matmul_add", w, n));
    return matmul_add(q, w, x, n, y);
}

int32_t timed_matmul_t(pi_bk_queue *q, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    Scope s(q, matrix_name("matmul_t", w, n));
    return matmul_t(q, w, x, n, y);
}

int32_t timed_matmul_glu(pi_bk_queue *q, const pi_bk_matrix *w, uint32_t act, const float *x, float *out) {
    Scope s(q, matrix_name("matmul_glu", w, 1));
    return matmul_glu(q, w, act, x, out);
}

int32_t timed_matmul_rmsnorm(pi_bk_queue *q, const pi_bk_matrix *w, const float *x, const float *g, float eps,
                             uint32_t act, float *y) {
    Scope s(q, matrix_name(act == PI_BK_NO_ACTIVATION ? "matmul_rmsnorm" : "matmul_rmsnorm_glu", w, 1));
    return matmul_rmsnorm(q, w, x, g, eps, act, y);
}

template <auto F>
auto wrap(const char *name) {
    Timed<F>::name = name;
    return &Timed<F>::call;
}

}  // namespace

bool op_profile_enabled() {
    static const bool on = [] {
        const char *v = std::getenv("PI_CUDA_PROFILE");
        return v && *v && *v != '0';
    }();
    return on;
}

const pi_backend_ops *profiled_table(const pi_backend_ops *ops) {
    if (!op_profile_enabled()) return ops;
    static const pi_backend_ops table = [ops] {
        pi_backend_ops t = *ops;
        t.copy_to_device = wrap<copy_to_device>("copy_to_device");
        t.copy_to_host = wrap<copy_to_host>("copy_to_host");
        t.matmul = timed_matmul;
        t.predict = wrap<predict>("predict");
        t.sparse_ffn = wrap<sparse_ffn>("sparse_ffn");
        t.ffn_activation = wrap<ffn_activation>("ffn_activation");
        t.norm = wrap<norm>("norm");
        t.rope = wrap<rope>("rope");
        t.kv_store = wrap<kv_store>("kv_store");
        t.attention = wrap<attention>("attention");
        t.embedding = wrap<embedding>("embedding");
        t.add = wrap<add>("add");
        t.matmul_t = timed_matmul_t;
        t.wait_value = wrap<wait_value>("wait_value");
        t.matmul_add = timed_matmul_add;
        t.attention_decode = wrap<attention_decode>("attention_decode");
        t.matmul_glu = timed_matmul_glu;
        t.matmul_rmsnorm = timed_matmul_rmsnorm;
        return t;
    }();
    return &table;
}

void op_profile_collect(pi_bk_queue *queue) {
    OpProfile *p = profile_of(queue);
    if (!p || p->pending.empty()) return;
    float ms = 0;
    if (p->first && p->last && cudaEventElapsedTime(&ms, p->first, p->last) == cudaSuccess) p->span_ms += ms;
    for (OpProfile::Pending &e : p->pending) {
        if (cudaEventElapsedTime(&ms, e.begin, e.end) == cudaSuccess) {
            OpProfile::Total &t = p->totals[e.name];
            ++t.calls;
            t.ms += ms;
        }
        p->spare.push_back(e.begin);
        p->spare.push_back(e.end);
    }
    cudaGetLastError();  // an event that never ran (an error path) leaves a non-sticky error; not ours to report
    p->pending.clear();
    p->first = p->last = nullptr;
}

void op_profile_release(pi_bk_queue *queue) {
    OpProfile *p = profile_of(queue);
    if (!p) return;
    op_profile_collect(queue);
    std::vector<std::pair<std::string, OpProfile::Total>> rows(p->totals.begin(), p->totals.end());
    std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) { return a.second.ms > b.second.ms; });
    double sum = 0;
    for (const auto &r : rows) sum += r.second.ms;
    std::fprintf(stderr, "PI_CUDA_PROFILE queue %p: %.3f ms of GPU work in the operations, %.3f ms from the first "
                 "to the last event of each synchronized batch (the rest: idle between operations)\n",
                 static_cast<void *>(queue), sum, p->span_ms);
    std::fprintf(stderr, "%10s %12s %10s %6s  %s\n", "calls", "total ms", "mean us", "share", "operation");
    for (const auto &r : rows) {
        std::fprintf(stderr, "%10llu %12.3f %10.2f %5.1f%%  %s\n", (unsigned long long)r.second.calls, r.second.ms,
                     1000.0 * r.second.ms / double(r.second.calls), sum > 0 ? 100.0 * r.second.ms / sum : 0.0,
                     r.first.c_str());
    }
    for (cudaEvent_t e : p->spare) cudaEventDestroy(e);
    delete p;
    queue->profile = nullptr;
}

}  // namespace pi::cuda
