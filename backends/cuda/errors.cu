// Error reporting of the module: every failing entry point records a message for last_error() on the calling
// thread and returns a pi_bk_status; nothing throws or aborts across the table.
#include "backends/cuda/cuda_backend.h"

namespace pi::cuda {
namespace {
thread_local std::string t_last_error;
}  // namespace

const char *last_error() { return t_last_error.c_str(); }

int32_t fail(int32_t status, const std::string &message) {
    t_last_error = message;
    return status;
}

int32_t check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return PI_BK_OK;
    const int32_t status = err == cudaErrorMemoryAllocation ? PI_BK_ERR_OUT_OF_MEMORY : PI_BK_ERR_DEVICE;
    return fail(status, std::string("cuda: ") + what + ": " + cudaGetErrorString(err));
}

int32_t check_launch(const char *what) { return check(cudaGetLastError(), what); }

uint64_t row_bytes(uint32_t type, uint64_t n_cols) {
    switch (type) {
        case PI_BK_F32: return 4 * n_cols;
        case PI_BK_F16:
        case PI_BK_BF16: return 2 * n_cols;
        case PI_BK_Q8_0: return n_cols % 32 ? 0 : n_cols / 32 * 34;
        case PI_BK_Q4_0: return n_cols % 32 ? 0 : n_cols / 32 * 18;
        default: return 0;
    }
}

int32_t check_matrix(const pi_bk_matrix *m, const char *what) {
    if (!m) return fail(PI_BK_ERR_INVALID_ARGUMENT, std::string("cuda: ") + what + " is NULL");
    if (m->type != PI_BK_F32 && m->type != PI_BK_F16 && m->type != PI_BK_BF16 && m->type != PI_BK_Q8_0 &&
        m->type != PI_BK_Q4_0) {
        return fail(PI_BK_ERR_UNSUPPORTED,
                    std::string("cuda: ") + what + ": weight type " + std::to_string(m->type) + " is not supported");
    }
    const uint64_t rb = row_bytes(m->type, m->n_cols);
    if (rb == 0) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, std::string("cuda: ") + what + ": " + std::to_string(m->n_cols) +
                                                    " columns is not a whole number of 32-weight blocks");
    }
    if (!m->data && m->n_rows > 0) return fail(PI_BK_ERR_INVALID_ARGUMENT, std::string("cuda: ") + what + ": data is NULL");
    if (m->n_rows > 1 && m->row_stride < rb) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, std::string("cuda: ") + what + ": row_stride " +
                                                    std::to_string(m->row_stride) + " < row size " + std::to_string(rb));
    }
    // Kernels load whole elements (F32) or 16-bit words (everything else; the 34- and 18-byte ggml blocks are only
    // 2-byte aligned), so rows must start at such a boundary.
    const uint64_t align = m->type == PI_BK_F32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(m->data) % align || (m->n_rows > 1 && m->row_stride % align)) {
        return fail(PI_BK_ERR_UNSUPPORTED, std::string("cuda: ") + what + ": rows are not " + std::to_string(align) +
                                               "-byte aligned");
    }
    if (m->n_rows > INT32_MAX || m->n_cols > INT32_MAX) {
        return fail(PI_BK_ERR_UNSUPPORTED, std::string("cuda: ") + what + ": more than 2^31 rows or columns");
    }
    return PI_BK_OK;
}

}  // namespace pi::cuda
