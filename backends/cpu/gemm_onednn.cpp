// oneDNN 2.6 (v2 API) matmul on one weight panel, single-threaded. The Debian build uses the OpenMP runtime; the
// calling thread's OpenMP thread count is 1 during each call so oneDNN never starts a team of its own (our pool
// already runs one panel per core, and an idle OpenMP team would spin against the decode pool).
#include <omp.h>
#include <dnnl.hpp>

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/gemm_onednn.h"
#include "common/error.h"

namespace pi::cpu::detail {
namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

class OnednnPanelMatmulImpl final : public OnednnPanelMatmul {
public:
    OnednnPanelMatmulImpl() : engine_(dnnl::engine::kind::cpu, 0) {}

    void run(PanelType type, const void *x, size_t m, size_t k, size_t ldx, const void *w, size_t n, size_t ldw,
             float *y, size_t ldy) override {
        // The OpenMP thread count is per-thread state that may belong to the host application: set it to 1 for the
        // call (oneDNN then runs on this thread alone) and put the caller's value back afterwards.
        struct OmpSingle {
            int saved = omp_get_max_threads();
            OmpSingle() { omp_set_num_threads(1); }
            ~OmpSingle() { omp_set_num_threads(saved); }
        } single;
        try {
            const Entry &e = primitive(type, m, k, n, ldx, ldw);
            // The brgemm kernels want a dense destination (a strided one falls back to a slower GEMM): write to a
            // per-thread buffer and copy out when y is strided.
            thread_local AlignedBuffer<float> dense;
            float *dst = y;
            if (ldy != n) {
                dense.reserve(m * n);
                dst = dense.data();
            }
            // The scratchpad is ours and per thread: a library-managed one is shared by all executions of a
            // primitive, which breaks concurrent calls (Debian's build lacks DNNL_ENABLE_CONCURRENT_EXEC).
            thread_local AlignedBuffer<uint8_t> scratch;
            scratch.reserve(e.scratchpad.get_size() > 0 ? e.scratchpad.get_size() : 1);
            dnnl::stream stream(engine_);
            dnnl::memory src_mem(e.src, engine_, const_cast<void *>(x));
            dnnl::memory wei_mem(e.wei, engine_, const_cast<void *>(w));
            dnnl::memory dst_mem(e.dst, engine_, dst);
            dnnl::memory scratch_mem(e.scratchpad, engine_, scratch.data());
            e.matmul.execute(stream, {{DNNL_ARG_SRC, src_mem},
                                      {DNNL_ARG_WEIGHTS, wei_mem},
                                      {DNNL_ARG_DST, dst_mem},
                                      {DNNL_ARG_SCRATCHPAD, scratch_mem}});
            stream.wait();
            if (dst != y) {
                for (size_t t = 0; t < m; ++t) {
                    for (size_t j = 0; j < n; ++j) y[t * ldy + j] = dst[t * n + j];
                }
            }
        } catch (const dnnl::error &err) {
            fail(PI_ERR_BACKEND, std::string("oneDNN matmul failed: ") + err.what());
        }
    }

private:
    struct Entry {
        dnnl::memory::desc src, wei, dst, scratchpad;
        dnnl::matmul matmul;
    };
    using Key = std::tuple<int, size_t, size_t, size_t, size_t, size_t>;

    // Primitives are cached per shape (a prefill uses a handful: per weight shape a full panel and a last one).
    // Creating one costs ~0.1-1 ms; executing a cached one is thread-safe.
    const Entry &primitive(PanelType type, size_t m, size_t k, size_t n, size_t ldx, size_t ldw) {
        std::lock_guard<std::mutex> lock(mutex_);
        const Key key{static_cast<int>(type), m, k, n, ldx, ldw};
        auto it = cache_.find(key);
        if (it != cache_.end()) return it->second;
        const dt t = type == PanelType::F32 ? dt::f32 : dt::bf16;
        const auto M = static_cast<dnnl::memory::dim>(m), K = static_cast<dnnl::memory::dim>(k),
                   N = static_cast<dnnl::memory::dim>(n);
        Entry e;
        e.src = dnnl::memory::desc(dims{M, K}, t, dims{static_cast<dnnl::memory::dim>(ldx), 1});
        // W is n rows of k: as the k x n matrix of the product that is column-major with leading dimension ldw.
        e.wei = dnnl::memory::desc(dims{K, N}, t, dims{1, static_cast<dnnl::memory::dim>(ldw)});
        e.dst = dnnl::memory::desc(dims{M, N}, dt::f32, dims{N, 1});
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e.src, e.wei, e.dst), attr, engine_);
        e.scratchpad = pd.scratchpad_desc();
        e.matmul = dnnl::matmul(pd);
        return cache_.emplace(key, std::move(e)).first->second;
    }

    dnnl::engine engine_;
    std::mutex mutex_;
    std::map<Key, Entry> cache_;
};

}  // namespace

std::unique_ptr<OnednnPanelMatmul> make_onednn_panel_matmul() {
    try {
        return std::make_unique<OnednnPanelMatmulImpl>();
    } catch (const dnnl::error &err) {
        fail(PI_ERR_BACKEND, std::string("oneDNN CPU engine unavailable: ") + err.what());
    }
}

bool onednn_compiled() { return true; }

}  // namespace pi::cpu::detail
