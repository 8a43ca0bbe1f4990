// Dense products y (n x n_rows) = x (n x n_cols) . W^T (matmul) and y (n x n_cols) = x (n x n_rows) . W (matmul_t).
//
// matmul, n <= kGemvMaxTokens (decode, predictor): GEMV kernels, one warp per weight row, 8 rows per 256-thread
// block, up to 4 tokens per launch so each weight row is read from memory once per 4 tokens. Per row the warp streams
// its row_bytes once; x (and its q8 form) is re-read by every warp but stays in L1/L2. Quantized weights take the q8
// activation of quantize.cu, so results match the CPU backend's decode path to float rounding order.
// Larger n (prefill) and every matmul_t go through cuBLAS:
// - F32 weights: cublasSgemm in full f32 (the default math mode: no TF32).
// - F16/BF16 weights: cublasGemmEx on the weights as stored (no per-call widening), fp32 accumulation. x is split
//   into two 16-bit parts of the weights' type, hi = round16(x) and lo = round16(x - hi), and the two products are
//   summed (the second GEMM accumulates with beta = 1): x keeps ~22 (F16) / ~16 (BF16) significant bits instead of
//   11 / 8, so prompts match the f32 path to ~1e-7 (F16) / ~1e-5 (BF16) relative at twice the tensor-core work,
//   which prefill can afford. PI_CUDA_GEMM16=single uses hi alone (x rounded to 16 bits: faster, less exact);
//   PI_CUDA_GEMM16=f32 restores the widening path below (for measurements). Limit: F16 has no exponent range for
//   |x| > 65504; such x overflows hi (inf) -- activations of the supported models stay far below.
// - Q8_0/Q4_0 weights: panels of rows are widened to f32 in the workspace (exact) and multiplied with cublasSgemm;
//   for matmul x is first rounded as decode rounds it (quantize_q8_values), as the CPU's quantized GEMM does; matmul_t
//   uses x as given (backends/backend.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/dependent_launch.cuh"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kRowsPerBlock = 8;
constexpr int kTokensPerLaunch = 4;
constexpr uint64_t kGemvMaxTokens = 16;
constexpr size_t kPanelBytes = size_t(64) << 20;  // f32 panel of rows for cuBLAS

// NORM (one token, float weights): x is a norm's input and g its weight; each warp sums the squares of the x values
// its lanes load anyway and takes the norm's scale from them (warp_rms_scale: no block barrier, no pass before the
// weights stream), so the normalized x is never written (matmul_rmsnorm).
template <uint32_t T, bool VEC, int NT, bool NORM = false>
__global__ void __launch_bounds__(kRowsPerBlock * dev::kWarp)
    gemv_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t n_rows, uint32_t n_cols,
                const float *__restrict__ x, const int8_t *__restrict__ xq, const float *__restrict__ xd, int nt,
                GemvOut out, float *__restrict__ y, const float *__restrict__ g = nullptr, float eps = 0.0f) {
    const uint32_t r = blockIdx.x * kRowsPerBlock + threadIdx.x / dev::kWarp;
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh): x and y only after this
    if (r >= n_rows) return;
    const uint8_t *row = w + size_t(r) * row_stride;
    float acc[NT], scale = 1.0f;
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    if constexpr (T == PI_BK_Q8_0 || T == PI_BK_Q4_0) {
        dev::dot_quant_partial<T, NT>(row, n_cols, xq, xd, nt, acc);
    } else {
        double ss = 0.0;
        dev::dot_float_partial<T, VEC, NT, NORM>(row, n_cols, x, n_cols, nt, acc, g, &ss);
        if constexpr (NORM) scale = dev::warp_rms_scale(ss, n_cols, eps);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = dev::warp_sum(acc[t]) * scale;
    if (threadIdx.x % dev::kWarp == 0) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t >= nt) continue;
            float &dst = y[size_t(t) * n_rows + r];
            dst = out == GemvOut::relu ? (acc[t] < 0.0f ? 0.0f : acc[t]) : out == GemvOut::add ? dst + acc[t] : acc[t];
        }
    }
}

// One token's GLU over 16-bit weights in the vec layout (rows and x 16-byte aligned, n_cols % 8 == 0): a warp takes
// gate row r and up row r + n_out of a stacked [gate; up] matrix and stores act(gate . x, up . x) (matmul_glu). Each
// lane issues BATCH 16-byte loads of both rows before the first multiply (2 x BATCH x 512 bytes in flight per warp)
// and each x load serves both rows. Each row's sum is formed in the order of dot_float_partial. NORM: as
// gemv_kernel's (matmul_rmsnorm).
template <uint32_t T, int BATCH, bool NORM>
__global__ void __launch_bounds__(kRowsPerBlock * dev::kWarp)
    glu16_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t n_out, uint32_t n_cols,
                 const float *__restrict__ x, uint32_t act, float *__restrict__ y, const float *__restrict__ g,
                 float eps) {
    const uint32_t r = blockIdx.x * kRowsPerBlock + threadIdx.x / dev::kWarp;
    const int lane = threadIdx.x % dev::kWarp;
    const uint4 *row[2] = {reinterpret_cast<const uint4 *>(w + size_t(r) * row_stride),
                           reinterpret_cast<const uint4 *>(w + size_t(r + n_out) * row_stride)};
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh): x and y only after this
    if (r >= n_out) return;
    const uint32_t units = n_cols / 8;
    double ss = 0.0;  // NORM: this lane's squares of x
    float acc[2] = {0.0f, 0.0f};
    for (uint32_t u0 = lane; u0 < units; u0 += dev::kWarp * BATCH) {
        uint4 wv[2][BATCH];
#pragma unroll
        for (int b = 0; b < BATCH; ++b) {
            const uint32_t u = u0 + uint32_t(b) * dev::kWarp;
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                if (u < units) wv[i][b] = dev::load_stream16(row[i] + u);
            }
        }
#pragma unroll
        for (int b = 0; b < BATCH; ++b) {
            const uint32_t u = u0 + uint32_t(b) * dev::kWarp;
            if (u >= units) break;
            const float4 a = dev::load_x4<NORM>(x, g, size_t(u) * 8, ss),
                         c = dev::load_x4<NORM>(x, g, size_t(u) * 8 + 4, ss);
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                float f[8];
                dev::unpack8<T>(wv[i][b], f);
                acc[i] += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * c.x + f[5] * c.y + f[6] * c.z +
                          f[7] * c.w;
            }
        }
    }
    const float scale = NORM ? dev::warp_rms_scale(ss, n_cols, eps) : 1.0f;
    const float gate = dev::warp_sum(acc[0]) * scale, up = dev::warp_sum(acc[1]) * scale;
    if (lane == 0) y[r] = dev::dense_activation(act, gate, up);
}

// Any type, one token: the GLU rows through the generic per-row dots (x quantized for Q8_0/Q4_0).
template <uint32_t T, bool VEC>
__global__ void __launch_bounds__(kRowsPerBlock * dev::kWarp)
    glu_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t n_out, uint32_t n_cols,
               const float *__restrict__ x, const int8_t *__restrict__ xq, const float *__restrict__ xd, uint32_t act,
               float *__restrict__ y) {
    const uint32_t r = blockIdx.x * kRowsPerBlock + threadIdx.x / dev::kWarp;
    float g[1] = {0.0f}, u[1] = {0.0f};
    const uint8_t *gate = w + size_t(r) * row_stride, *up = w + size_t(r + n_out) * row_stride;
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh): x and y only after this
    if (r >= n_out) return;
    if constexpr (T == PI_BK_Q8_0 || T == PI_BK_Q4_0) {
        dev::dot_quant_partial<T, 1>(gate, n_cols, xq, xd, 1, g);
        dev::dot_quant_partial<T, 1>(up, n_cols, xq, xd, 1, u);
    } else {
        dev::dot_float_partial<T, VEC, 1>(gate, n_cols, x, n_cols, 1, g);
        dev::dot_float_partial<T, VEC, 1>(up, n_cols, x, n_cols, 1, u);
    }
    g[0] = dev::warp_sum(g[0]);
    u[0] = dev::warp_sum(u[0]);
    if (threadIdx.x % dev::kWarp == 0) y[r] = dev::dense_activation(act, g[0], u[0]);
}

// One token, float weights in the vec layout, few rows: kSplit warps share a row, each taking a contiguous quarter of
// its 16-byte units, and the block adds the kSplit partial sums in warp order (deterministic). A product with few
// rows (the predictor's fc1: 1024 rows; the 4096-row output and down projections) then runs kSplit times as many
// warps, each with a quarter of the latency chain (the plain kernel leaves 1024 rows at ~8 warps per SM).
constexpr int kSplit = 4;
template <uint32_t T>
__global__ void __launch_bounds__(kRowsPerBlock * dev::kWarp)
    gemv_split_kernel(const uint8_t *__restrict__ w, uint64_t row_stride, uint32_t n_rows, uint32_t n_cols,
                      const float *__restrict__ x, GemvOut out, float *__restrict__ y) {
    __shared__ float part[kRowsPerBlock];
    const int warp = threadIdx.x / dev::kWarp, lane = threadIdx.x % dev::kWarp;
    const uint32_t r = blockIdx.x * (kRowsPerBlock / kSplit) + uint32_t(warp / kSplit);
    const int piece = warp % kSplit;
    dev::start_after_producer();  // launched ahead (dependent_launch.cuh): x and y only after this
    float acc = 0.0f;
    if (r < n_rows) {
        const uint32_t units = n_cols / 8, per = (units + kSplit - 1) / kSplit;
        const uint32_t u_begin = uint32_t(piece) * per, u_end = min(units, u_begin + per);
        const uint8_t *row = w + size_t(r) * row_stride;
#pragma unroll 4
        for (uint32_t u = u_begin + uint32_t(lane); u < u_end; u += dev::kWarp) {
            float f[8];
            dev::load_weight8<T>(row, u * 8, f);
            const float4 a = __ldg(reinterpret_cast<const float4 *>(x) + 2 * u),
                         b = __ldg(reinterpret_cast<const float4 *>(x) + 2 * u + 1);
            acc += f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
        }
    }
    acc = dev::warp_sum(acc);
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (piece != 0 || lane != 0 || r >= n_rows) return;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kSplit; ++i) sum += part[warp + i];
    y[r] = out == GemvOut::relu ? (sum < 0.0f ? 0.0f : sum) : out == GemvOut::add ? y[r] + sum : sum;
}

// PI_CUDA_SPLITK=0 turns the split kernel off (measurements); it takes one-token products of at most 4096 rows.
bool split_wanted(const pi_bk_matrix *w) {
    static const bool on = [] {
        const char *v = std::getenv("PI_CUDA_SPLITK");
        return !(v && std::strcmp(v, "0") == 0);
    }();
    return on && w->n_rows <= 4096 && w->n_cols >= 1024;
}

// The GLU kernel's loads in flight per lane: 2 rows x PI_CUDA_GLU (2, 4 or 8). Default 2: bench-7b dense decode on
// the H100 measured 179.4 tok/s with 2, 171.2 with 4, 174.7 with 8 (docs/PERFORMANCE.md) -- as the plain GEMV,
// where a few loads per lane and full occupancy beat deep batches.
int glu_batch() {
    static const int batch = [] {
        const char *v = std::getenv("PI_CUDA_GLU");
        const int b = v ? std::atoi(v) : 2;
        return b == 4 || b == 8 ? b : 2;
    }();
    return batch;
}

// [gate; up] x -> act(gate . x, up . x) for 16-bit weights in the vec layout; NORM: x * g / rms(x) (matmul_rmsnorm).
template <uint32_t T, bool NORM>
void launch_glu16(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const float *g, float eps, uint32_t act,
                  float *y) {
    const uint32_t n_out = uint32_t(w->n_rows / 2), cols = uint32_t(w->n_cols);
    const unsigned grid = unsigned((n_out + kRowsPerBlock - 1) / kRowsPerBlock), threads = kRowsPerBlock * dev::kWarp;
    const auto *data = static_cast<const uint8_t *>(w->data);
    switch (glu_batch()) {
        default:
            launch_dependent(glu16_kernel<T, 2, NORM>, grid, threads, 0, stream, data, w->row_stride, n_out, cols, x,
                             act, y, g, eps);
            break;
        case 8:
            launch_dependent(glu16_kernel<T, 8, NORM>, grid, threads, 0, stream, data, w->row_stride, n_out, cols, x,
                             act, y, g, eps);
            break;
        case 4:
            launch_dependent(glu16_kernel<T, 4, NORM>, grid, threads, 0, stream, data, w->row_stride, n_out, cols, x,
                             act, y, g, eps);
            break;
    }
}

template <uint32_t T, bool VEC>
void launch_gemv(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const int8_t *xq, const float *xd,
                 int nt, GemvOut out, float *y) {
    const unsigned grid = unsigned((w->n_rows + kRowsPerBlock - 1) / kRowsPerBlock);
    const auto *data = static_cast<const uint8_t *>(w->data);
    const uint32_t rows = uint32_t(w->n_rows), cols = uint32_t(w->n_cols);
    if constexpr (VEC && T != PI_BK_Q8_0 && T != PI_BK_Q4_0) {
        if (nt == 1 && split_wanted(w)) {
            const unsigned g = unsigned((w->n_rows + kRowsPerBlock / kSplit - 1) / (kRowsPerBlock / kSplit));
            launch_dependent(gemv_split_kernel<T>, g, kRowsPerBlock * dev::kWarp, 0, stream, data, w->row_stride, rows,
                             cols, x, out, y);
            return;
        }
    }
    if (nt == 1) {
        launch_dependent(gemv_kernel<T, VEC, 1>, grid, kRowsPerBlock * dev::kWarp, 0, stream, data, w->row_stride, rows,
                         cols, x, xq, xd, nt, out, y, nullptr, 0.0f);
    } else {
        launch_dependent(gemv_kernel<T, VEC, kTokensPerLaunch>, grid, kRowsPerBlock * dev::kWarp, 0, stream, data,
                         w->row_stride, rows, cols, x, xq, xd, nt, out, y, nullptr, 0.0f);
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

enum class Gemm16 { Split, Single, F32 };

Gemm16 gemm16_mode() {
    static const Gemm16 mode = [] {
        const char *v = std::getenv("PI_CUDA_GEMM16");
        if (v && std::strcmp(v, "single") == 0) return Gemm16::Single;
        if (v && std::strcmp(v, "f32") == 0) return Gemm16::F32;
        return Gemm16::Split;
    }();
    return mode;
}

template <typename H>
__device__ __forceinline__ H to16(float v);
template <>
__device__ __forceinline__ __half to16<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 to16<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// hi[i] = round16(x[i]); lo[i] = round16(x[i] - hi[i]) (lo == NULL: hi only). x - hi is exact in binary32.
template <typename H>
__global__ void split16_kernel(const float *__restrict__ x, size_t count, H *__restrict__ hi, H *__restrict__ lo) {
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
        const float v = x[i];
        const H h = to16<H>(v);
        hi[i] = h;
        if (lo) lo[i] = to16<H>(v - float(h));
    }
}

int32_t blas_handle(pi_bk_queue *queue) {
    if (!queue->blas) {
        if (int32_t s = check_blas(cublasCreate(&queue->blas), "cublasCreate")) return s;
    }
    return check_blas(cublasSetStream(queue->blas, queue->stream), "cublasSetStream");
}

// C (m x nt, ld m, f32) = op(A) (m x k, 16-bit weights as stored, lda) . X (k x nt, ld k) with x split as above.
// op_a: CUBLAS_OP_T for matmul (A = W^T view), CUBLAS_OP_N for matmul_t.
int32_t gemm16(pi_bk_queue *queue, cublasOperation_t op_a, const pi_bk_matrix *w, int m, int nt, int k, int lda,
               const float *x, float *y) {
    const bool split = gemm16_mode() == Gemm16::Split;
    const size_t count = size_t(nt) * size_t(k);
    const size_t part = (count * 2 + 255) & ~size_t(255);
    if (int32_t s = prepare(queue, split ? 2 * part : part)) return s;
    void *hi = queue->workspace;
    void *lo = split ? static_cast<uint8_t *>(queue->workspace) + part : nullptr;
    const unsigned grid = unsigned(std::min<size_t>((count + 255) / 256, size_t(queue->sm_count) * 8));
    const bool bf = w->type == PI_BK_BF16;
    if (bf) {
        split16_kernel<<<grid, 256, 0, queue->stream>>>(x, count, static_cast<__nv_bfloat16 *>(hi),
                                                        static_cast<__nv_bfloat16 *>(lo));
    } else {
        split16_kernel<<<grid, 256, 0, queue->stream>>>(x, count, static_cast<__half *>(hi), static_cast<__half *>(lo));
    }
    if (int32_t s = check_launch("split x to 16 bits")) return s;
    const cudaDataType t16 = bf ? CUDA_R_16BF : CUDA_R_16F;
    const float one = 1.0f, zero = 0.0f;
    const void *parts[2] = {hi, lo};
    for (int p = 0; p < (split ? 2 : 1); ++p) {
        if (int32_t s = check_blas(cublasGemmEx(queue->blas, op_a, CUBLAS_OP_N, m, nt, k, &one, w->data, t16, lda,
                                                parts[p], t16, k, p == 0 ? &zero : &one, y, CUDA_R_32F, m,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                                   "cublasGemmEx")) {
            return s;
        }
    }
    return PI_BK_OK;
}

bool gemm16_ok(const pi_bk_matrix *w) {
    return (w->type == PI_BK_F16 || w->type == PI_BK_BF16) && gemm16_mode() != Gemm16::F32 &&
           (w->n_rows <= 1 || w->row_stride % 2 == 0) && reinterpret_cast<uintptr_t>(w->data) % 2 == 0;
}

// Leading dimension of the weights in elements (a single row may have any stride).
int weight_ld(const pi_bk_matrix *w, uint64_t elem_bytes) {
    return w->n_rows > 1 ? int(w->row_stride / elem_bytes) : int(w->n_cols);
}

int32_t matmul_blas(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (int32_t s = blas_handle(queue)) return s;
    const float one = 1.0f, zero = 0.0f;
    const int m_rows = int(w->n_rows), k = int(w->n_cols), nt = int(n);
    // Column-major view: Y^T (n_rows x n, ld n_rows) = W (as the transpose of a k x n_rows matrix) . X^T (k x n).
    if (w->type == PI_BK_F32 && w->row_stride % 4 == 0) {
        return check_blas(cublasSgemm(queue->blas, CUBLAS_OP_T, CUBLAS_OP_N, m_rows, nt, k, &one,
                                      static_cast<const float *>(w->data), weight_ld(w, 4), x, k, &zero, y, m_rows),
                          "cublasSgemm");
    }
    if (gemm16_ok(w)) return gemm16(queue, CUBLAS_OP_T, w, m_rows, nt, k, weight_ld(w, 2), x, y);
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

// y (n x C) = x (n x R) . W, W of R rows of C. Column-major: Y^T (C x n, ld C) = W as a C x R matrix (ld row_stride)
// . X^T (R x n, ld R): no transposes. Quantized weights: panels of W's rows (slices of the inner dimension) are
// widened and accumulated (beta = 1 after the first).
int32_t matmul_t_blas(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (int32_t s = blas_handle(queue)) return s;
    const float one = 1.0f, zero = 0.0f;
    const int c = int(w->n_cols), r = int(w->n_rows), nt = int(n);
    if (w->type == PI_BK_F32 && w->row_stride % 4 == 0) {
        return check_blas(cublasSgemm(queue->blas, CUBLAS_OP_N, CUBLAS_OP_N, c, nt, r, &one,
                                      static_cast<const float *>(w->data), weight_ld(w, 4), x, r, &zero, y, c),
                          "cublasSgemm");
    }
    if (gemm16_ok(w)) return gemm16(queue, CUBLAS_OP_N, w, c, nt, r, weight_ld(w, 2), x, y);
    const uint64_t panel_rows = std::max<uint64_t>(1, std::min<uint64_t>(w->n_rows, kPanelBytes / (4 * w->n_cols)));
    const uint64_t panel_limit = std::min<uint64_t>(panel_rows, 65535);
    if (int32_t s = prepare(queue, (panel_limit * w->n_cols * 4 + 255) & ~size_t(255))) return s;
    float *panel = static_cast<float *>(queue->workspace);
    for (uint64_t r0 = 0; r0 < w->n_rows; r0 += panel_limit) {
        const uint32_t rows = uint32_t(std::min<uint64_t>(panel_limit, w->n_rows - r0));
        launch_widen(queue->stream, w, uint32_t(r0), rows, panel);
        if (int32_t s = check_launch("widen weight rows")) return s;
        if (int32_t s = check_blas(cublasSgemm(queue->blas, CUBLAS_OP_N, CUBLAS_OP_N, c, nt, int(rows), &one, panel, c,
                                               x + r0, r, r0 == 0 ? &zero : &one, y, c),
                                   "cublasSgemm")) {
            return s;
        }
    }
    return PI_BK_OK;
}

}  // namespace

int32_t gemv(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const int8_t *xq, const float *xd,
             uint64_t n, GemvOut out, float *y) {
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
                vec ? launch_gemv<PI_BK_F32, true>(stream, w, xt, xqt, xdt, nt, out, yt)
                    : launch_gemv<PI_BK_F32, false>(stream, w, xt, xqt, xdt, nt, out, yt);
                break;
            case PI_BK_F16:
                vec ? launch_gemv<PI_BK_F16, true>(stream, w, xt, xqt, xdt, nt, out, yt)
                    : launch_gemv<PI_BK_F16, false>(stream, w, xt, xqt, xdt, nt, out, yt);
                break;
            case PI_BK_BF16:
                vec ? launch_gemv<PI_BK_BF16, true>(stream, w, xt, xqt, xdt, nt, out, yt)
                    : launch_gemv<PI_BK_BF16, false>(stream, w, xt, xqt, xdt, nt, out, yt);
                break;
            case PI_BK_Q8_0: launch_gemv<PI_BK_Q8_0, false>(stream, w, xt, xqt, xdt, nt, out, yt); break;
            case PI_BK_Q4_0: launch_gemv<PI_BK_Q4_0, false>(stream, w, xt, xqt, xdt, nt, out, yt); break;
        }
        if (int32_t s = check_launch("gemv")) return s;
    }
    return PI_BK_OK;
}

// A decode-sized product (n <= kGemvMaxTokens) through the GEMV, x quantized first for Q8_0/Q4_0 weights.
static int32_t decode_gemv(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, GemvOut out, float *y) {
    if (!is_quantized(w->type)) {
        if (int32_t s = prepare(queue, 0)) return s;
        return gemv(queue->stream, w, x, nullptr, nullptr, n, out, y);
    }
    if (int32_t s = prepare(queue, q8_bytes(n, w->n_cols))) return s;
    auto *xq = static_cast<int8_t *>(queue->workspace);
    auto *xd = reinterpret_cast<float *>(xq + ((n * w->n_cols + 255) & ~uint64_t(255)));
    if (int32_t s = quantize_q8(queue->stream, x, n, w->n_cols, xq, xd)) return s;
    return gemv(queue->stream, w, x, xq, xd, n, out, y);
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
    return decode_gemv(queue, w, x, n, GemvOut::store, y);
}

// y += x . w^T for decode-sized n: the GEMV with its sum added to y (one kernel instead of a product and an add).
int32_t matmul_add(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_add: NULL queue");
    if (int32_t s = check_matrix(w, "matmul_add weight")) return s;
    if (n == 0 || w->n_rows == 0) return PI_BK_OK;
    if (!x || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_add: NULL x or y");
    if (n > kGemvMaxTokens) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: matmul_add: more than " + std::to_string(kGemvMaxTokens) +
                                               " tokens (use matmul and add)");
    }
    return decode_gemv(queue, w, x, n, GemvOut::add, y);
}

// out[i] = act(gate_i . x, up_i . x) over w = [gate; up]: one kernel instead of a product and an activation pass.
int32_t matmul_glu(pi_bk_queue *queue, const pi_bk_matrix *w, uint32_t activation, const float *x, float *out) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_glu: NULL queue");
    if (int32_t s = check_matrix(w, "matmul_glu weight")) return s;
    if (activation >= PI_BK_ACT_RELU) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_glu: the activation must have a gate (SILU, REGLU, DRELU)");
    }
    if (w->n_rows % 2) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_glu: [gate; up] needs an even row count");
    if (w->n_rows == 0) return PI_BK_OK;
    if (!x || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_glu: NULL x or out");
    const uint32_t n_out = uint32_t(w->n_rows / 2), cols = uint32_t(w->n_cols);
    const unsigned grid = unsigned((n_out + kRowsPerBlock - 1) / kRowsPerBlock);
    const auto *data = static_cast<const uint8_t *>(w->data);
    const bool vec = w->n_cols % 8 == 0 && aligned16(w->data) && w->row_stride % 16 == 0 && aligned16(x);
    int8_t *xq = nullptr;
    float *xd = nullptr;
    if (is_quantized(w->type)) {
        if (int32_t s = prepare(queue, q8_bytes(1, w->n_cols))) return s;
        xq = static_cast<int8_t *>(queue->workspace);
        xd = reinterpret_cast<float *>(xq + ((w->n_cols + 255) & ~uint64_t(255)));
        if (int32_t s = quantize_q8(queue->stream, x, 1, w->n_cols, xq, xd)) return s;
    } else if (int32_t s = prepare(queue, 0)) {
        return s;
    }
    cudaStream_t st = queue->stream;
    constexpr int kThreads = kRowsPerBlock * dev::kWarp;
    const uint64_t rs = w->row_stride;
    auto glu = [&](auto kernel) {
        launch_dependent(kernel, grid, kThreads, 0, st, data, rs, n_out, cols, x, xq, xd, activation, out);
    };
    switch (w->type) {
        case PI_BK_F32: vec ? glu(glu_kernel<PI_BK_F32, true>) : glu(glu_kernel<PI_BK_F32, false>); break;
        case PI_BK_F16:
            vec ? launch_glu16<PI_BK_F16, false>(st, w, x, nullptr, 0.0f, activation, out)
                : glu(glu_kernel<PI_BK_F16, false>);
            break;
        case PI_BK_BF16:
            vec ? launch_glu16<PI_BK_BF16, false>(st, w, x, nullptr, 0.0f, activation, out)
                : glu(glu_kernel<PI_BK_BF16, false>);
            break;
        case PI_BK_Q8_0: glu(glu_kernel<PI_BK_Q8_0, false>); break;
        case PI_BK_Q4_0: glu(glu_kernel<PI_BK_Q4_0, false>); break;
    }
    return check_launch("matmul_glu");
}

// y = w . rmsnorm(x) * g without writing the normalized x: float weights in the vec layout take the GEMV kernels'
// NORM form; other weights (quantized: x is rounded after the norm) run the norm into the workspace, then the
// product.
int32_t matmul_rmsnorm(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, const float *g, float eps,
                       uint32_t activation, float *y) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_rmsnorm: NULL queue");
    if (int32_t s = check_matrix(w, "matmul_rmsnorm weight")) return s;
    const bool glu = activation != PI_BK_NO_ACTIVATION;
    if (glu && (activation >= PI_BK_ACT_RELU || w->n_rows % 2)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_rmsnorm: a GLU needs a gated activation and [gate; up]");
    }
    if (w->n_rows == 0 || w->n_cols == 0) return PI_BK_OK;
    if (!x || !g || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_rmsnorm: NULL x, g or y");
    const bool vec = w->n_cols % 8 == 0 && aligned16(w->data) && (w->n_rows <= 1 || w->row_stride % 16 == 0) &&
                     aligned16(x) && aligned16(g);
    const bool fused = vec && (w->type == PI_BK_F16 || w->type == PI_BK_BF16 || (w->type == PI_BK_F32 && !glu));
    if (!fused) {
        const size_t q8 = (q8_bytes(1, w->n_cols) + 255) & ~size_t(255);
        if (int32_t s = prepare(queue, q8 + w->n_cols * 4)) return s;  // the products' q8 part stays below xn
        float *xn = reinterpret_cast<float *>(static_cast<uint8_t *>(queue->workspace) + q8);
        if (int32_t s = norm(queue, x, g, nullptr, 1, w->n_cols, eps, xn)) return s;
        return glu ? matmul_glu(queue, w, activation, xn, y) : decode_gemv(queue, w, xn, 1, GemvOut::store, y);
    }
    if (int32_t s = prepare(queue, 0)) return s;
    const auto *data = static_cast<const uint8_t *>(w->data);
    const uint32_t cols = uint32_t(w->n_cols);
    constexpr int kThreads = kRowsPerBlock * dev::kWarp;
    cudaStream_t st = queue->stream;
    if (glu) {
        if (w->type == PI_BK_F16) launch_glu16<PI_BK_F16, true>(st, w, x, g, eps, activation, y);
        else launch_glu16<PI_BK_BF16, true>(st, w, x, g, eps, activation, y);
        return check_launch("matmul_rmsnorm");
    }
    const unsigned grid = unsigned((w->n_rows + kRowsPerBlock - 1) / kRowsPerBlock);
    const uint32_t rows = uint32_t(w->n_rows);
    auto gemv_norm = [&](auto kernel) {
        launch_dependent(kernel, grid, kThreads, 0, st, data, w->row_stride, rows, cols, x, nullptr, nullptr, 1,
                         GemvOut::store, y, g, eps);
    };
    switch (w->type) {
        case PI_BK_F32: gemv_norm(gemv_kernel<PI_BK_F32, true, 1, true>); break;
        case PI_BK_F16: gemv_norm(gemv_kernel<PI_BK_F16, true, 1, true>); break;
        default: gemv_norm(gemv_kernel<PI_BK_BF16, true, 1, true>); break;
    }
    return check_launch("matmul_rmsnorm");
}

}  // namespace pi::cuda

namespace pi::cuda {

int32_t matmul_t(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_t: NULL queue");
    if (int32_t s = check_matrix(w, "matmul_t weight")) return s;
    if (n == 0 || w->n_cols == 0) return PI_BK_OK;
    if (!x || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: matmul_t: NULL x or y");
    if (n > INT32_MAX || w->n_rows > INT32_MAX || w->n_cols > INT32_MAX) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: matmul_t: a dimension beyond 2^31");
    }
    if (w->n_rows == 0) return check(cudaMemsetAsync(y, 0, n * w->n_cols * 4, queue->stream), "cudaMemsetAsync");
    if (int32_t s = prepare(queue, 0)) return s;
    return matmul_t_blas(queue, w, x, n, y);
}

}  // namespace pi::cuda
