// Dense products y (n x n_rows) = x (n x n_cols) . W^T.
//
// n <= kGemvMaxTokens (decode, predictor): GEMV kernels, one warp per weight row, 8 rows per 256-thread block, up
// to 4 tokens per launch so each weight row is read from memory once per 4 tokens. Per row the warp streams its
// row_bytes once; x (and its q8 form) is re-read by every warp but stays in L1/L2. Quantized weights take the q8
// activation of quantize.cu, so results match the CPU backend's decode path to float rounding order.
// n > kGemvMaxTokens (prefill): panels of rows are widened to f32 in the workspace (exact for every type) and
// multiplied with cublasSgemm in full f32 (the default math mode: no TF32), like the CPU's oneDNN f32 path. For
// Q8_0/Q4_0 weights x is first rounded as decode rounds it (quantize_q8_values), as the CPU's quantized GEMM does.
#include <algorithm>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kRowsPerBlock = 8;
constexpr int kTokensPerLaunch = 4;
constexpr uint64_t kGemvMaxTokens = 16;
constexpr size_t kPanelBytes = size_t(64) << 20;  // f32 panel of rows for cuBLAS

template <uint32_t T, bool VEC, int NT>
__global__ void __launch_bounds__(kRowsPerBlock * dev::kWarp)
    gemv_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t n_rows, uint32_t n_cols,
                const float *__restrict__ x, const int8_t *__restrict__ xq, const float *__restrict__ xd, int nt,
                bool relu, float *__restrict__ y) {
    const uint32_t r = blockIdx.x * kRowsPerBlock + threadIdx.x / dev::kWarp;
    if (r >= n_rows) return;
    const uint8_t *row = w + size_t(r) * row_stride;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    if constexpr (T == PI_BK_Q8_0 || T == PI_BK_Q4_0) {
        dev::dot_quant_partial<T, NT>(row, n_cols, xq, xd, nt, acc);
    } else {
        dev::dot_float_partial<T, VEC, NT>(row, n_cols, x, n_cols, nt, acc);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = dev::warp_sum(acc[t]);
    if (threadIdx.x % dev::kWarp == 0) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t < nt) y[size_t(t) * n_rows + r] = relu && acc[t] < 0.0f ? 0.0f : acc[t];
        }
    }
}

template <uint32_t T, bool VEC>
void launch_gemv(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const int8_t *xq, const float *xd,
                 int nt, bool relu, float *y) {
    const unsigned grid = unsigned((w->n_rows + kRowsPerBlock - 1) / kRowsPerBlock);
    const auto *data = static_cast<const uint8_t *>(w->data);
    const uint32_t rows = uint32_t(w->n_rows), cols = uint32_t(w->n_cols);
    if (nt == 1) {
        gemv_kernel<T, VEC, 1><<<grid, kRowsPerBlock * dev::kWarp, 0, stream>>>(data, w->row_stride, rows, cols, x, xq,
                                                                              xd, nt, relu, y);
    } else {
        gemv_kernel<T, VEC, kTokensPerLaunch><<<grid, kRowsPerBlock * dev::kWarp, 0, stream>>>(
            data, w->row_stride, rows, cols, x, xq, xd, nt, relu, y);
    }
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Widens rows [r0, r1) to f32 rows of n_cols floats.
template <uint32_t T>
__global__ void widen_rows_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t r0, uint32_t n_cols,
                                  float *__restrict__ out) {
    const uint32_t r = r0 + blockIdx.y;
    const uint8_t *row = w + size_t(r) * row_stride;
    for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < n_cols; c += gridDim.x * blockDim.x) {
        out[size_t(blockIdx.y) * n_cols + c] = dev::load_weight<T>(row, c);
    }
}

void launch_widen(cudaStream_t stream, const pi_bk_matrix *w, uint32_t r0, uint32_t rows, float *out) {
    const dim3 grid(unsigned(std::min<uint64_t>((w->n_cols + 255) / 256, 64)), rows);
    const auto *data = static_cast<const uint8_t *>(w->data);
    const uint32_t cols = uint32_t(w->n_cols);
    switch (w->type) {
        case PI_BK_F32: widen_rows_kernel<PI_BK_F32><<<grid, 256, 0, stream>>>(data, w->row_stride, r0, cols, out); break;
        case PI_BK_F16: widen_rows_kernel<PI_BK_F16><<<grid, 256, 0, stream>>>(data, w->row_stride, r0, cols, out); break;
        case PI_BK_BF16: widen_rows_kernel<PI_BK_BF16><<<grid, 256, 0, stream>>>(data, w->row_stride, r0, cols, out); break;
        case PI_BK_Q8_0: widen_rows_kernel<PI_BK_Q8_0><<<grid, 256, 0, stream>>>(data, w->row_stride, r0, cols, out); break;
        case PI_BK_Q4_0: widen_rows_kernel<PI_BK_Q4_0><<<grid, 256, 0, stream>>>(data, w->row_stride, r0, cols, out); break;
    }
}

int32_t check_blas(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return PI_BK_OK;
    const int32_t status = st == CUBLAS_STATUS_ALLOC_FAILED ? PI_BK_ERR_OUT_OF_MEMORY : PI_BK_ERR_DEVICE;
    return fail(status, std::string("cuda: ") + what + ": " + cublasGetStatusString(st));
}

int32_t matmul_blas(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (!queue->blas) {
        if (int32_t s = check_blas(cublasCreate(&queue->blas), "cublasCreate")) return s;
    }
    if (int32_t s = check_blas(cublasSetStream(queue->blas, queue->stream), "cublasSetStream")) return s;
    const float one = 1.0f, zero = 0.0f;
    const int m_rows = int(w->n_rows), k = int(w->n_cols), nt = int(n);
    // Column-major view: Y^T (n_rows x n, ld n_rows) = W (as the transpose of a k x n_rows matrix) . X^T (k x n).
    if (w->type == PI_BK_F32 && w->row_stride % 4 == 0) {
        const int ld = w->n_rows > 1 ? int(w->row_stride / 4) : k;
        return check_blas(cublasSgemm(queue->blas, CUBLAS_OP_T, CUBLAS_OP_N, m_rows, nt, k, &one,
                                      static_cast<const float *>(w->data), ld, x, k, &zero, y, m_rows),
                          "cublasSgemm");
    }
    const uint64_t panel_rows = std::max<uint64_t>(1, std::min<uint64_t>(w->n_rows, kPanelBytes / (4 * w->n_cols)));
    const uint64_t panel_limit = std::min<uint64_t>(panel_rows, 65535);  // gridDim.y of the widening kernel
    const size_t panel_bytes = (panel_limit * w->n_cols * 4 + 255) & ~size_t(255);
    const size_t x_bytes = is_quantized(w->type) ? n * w->n_cols * 4 : 0;
    if (int32_t s = prepare(queue, panel_bytes + x_bytes)) return s;
    float *panel = static_cast<float *>(queue->workspace);
    if (x_bytes) {
        float *xr = reinterpret_cast<float *>(static_cast<uint8_t *>(queue->workspace) + panel_bytes);
        if (int32_t s = quantize_q8_values(queue->stream, x, n, w->n_cols, xr)) return s;
        x = xr;
    }
    for (uint64_t r0 = 0; r0 < w->n_rows; r0 += panel_limit) {
        const uint32_t rows = uint32_t(std::min<uint64_t>(panel_limit, w->n_rows - r0));
        launch_widen(queue->stream, w, uint32_t(r0), rows, panel);
        if (int32_t s = check_launch("widen weight rows")) return s;
        if (int32_t s = check_blas(cublasSgemm(queue->blas, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), nt, k, &one, panel, k,
                                               x, k, &zero, y + r0, m_rows),
                                   "cublasSgemm")) {
            return s;
        }
    }
    return PI_BK_OK;
}

}  // namespace

int32_t gemv(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const int8_t *xq, const float *xd,
             uint64_t n, bool relu_out, float *y) {
    const bool vec = w->n_cols % 8 == 0 && aligned16(w->data) && (w->n_rows <= 1 || w->row_stride % 16 == 0) &&
                     aligned16(x);
    for (uint64_t t0 = 0; t0 < n; t0 += kTokensPerLaunch) {
        const int nt = int(std::min<uint64_t>(kTokensPerLaunch, n - t0));
        const float *xt = x ? x + t0 * w->n_cols : nullptr;
        const int8_t *xqt = xq ? xq + t0 * w->n_cols : nullptr;
        const float *xdt = xd ? xd + t0 * (w->n_cols / 32) : nullptr;
        float *yt = y + t0 * w->n_rows;
        switch (w->type) {
            case PI_BK_F32:
                vec ? launch_gemv<PI_BK_F32, true>(stream, w, xt, xqt, xdt, nt, relu_out, yt)
                    : launch_gemv<PI_BK_F32, false>(stream, w, xt, xqt, xdt, nt, relu_out, yt);
                break;
            case PI_BK_F16:
                vec ? launch_gemv<PI_BK_F16, true>(stream, w, xt, xqt, xdt, nt, relu_out, yt)
                    : launch_gemv<PI_BK_F16, false>(stream, w, xt, xqt, xdt, nt, relu_out, yt);
                break;
            case PI_BK_BF16:
                vec ? launch_gemv<PI_BK_BF16, true>(stream, w, xt, xqt, xdt, nt, relu_out, yt)
                    : launch_gemv<PI_BK_BF16, false>(stream, w, xt, xqt, xdt, nt, relu_out, yt);
                break;
            case PI_BK_Q8_0: launch_gemv<PI_BK_Q8_0, false>(stream, w, xt, xqt, xdt, nt, relu_out, yt); break;
            case PI_BK_Q4_0: launch_gemv<PI_BK_Q4_0, false>(stream, w, xt, xqt, xdt, nt, relu_out, yt); break;
        }
        if (int32_t s = check_launch("gemv")) return s;
    }
    return PI_BK_OK;
}

int32_t matmul(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul: NULL queue");
    if (int32_t s = check_matrix(w, "matmul weight")) return s;
    if (n == 0 || w->n_rows == 0) return PI_BK_OK;
    if (!x || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul: NULL x or y");
    if (n > INT32_MAX) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: matmul: more than 2^31 tokens");
    if (n > kGemvMaxTokens) {
        if (int32_t s = prepare(queue, 0)) return s;
        return matmul_blas(queue, w, x, n, y);
    }
    if (!is_quantized(w->type)) {
        if (int32_t s = prepare(queue, 0)) return s;
        return gemv(queue->stream, w, x, nullptr, nullptr, n, false, y);
    }
    if (int32_t s = prepare(queue, q8_bytes(n, w->n_cols))) return s;
    auto *xq = static_cast<int8_t *>(queue->workspace);
    auto *xd = reinterpret_cast<float *>(xq + ((n * w->n_cols + 255) & ~uint64_t(255)));
    if (int32_t s = quantize_q8(queue->stream, x, n, w->n_cols, xq, xd)) return s;
    return gemv(queue->stream, w, x, xq, xd, n, false, y);
}

}  // namespace pi::cuda
