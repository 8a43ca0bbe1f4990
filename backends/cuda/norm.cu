// RMSNorm and LayerNorm, one 256-thread block per row (rows are a few thousand values: one pass to reduce, one to
// scale; 8 bytes of traffic per value). Sums are in double, as the CPU does (lib/runtime/layer_math.cpp), and are
// reduced in a fixed order, so results are deterministic. In place (y == x) is allowed.
#include "backends/cuda/cuda_backend.h"

namespace pi::cuda {
namespace {

constexpr int kThreads = 256;

// Sum over the block, every thread gets it; fixed order (shared-memory tree).
__device__ double block_sum(double v, double *scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
        __syncthreads();
    }
    const double total = scratch[0];
    __syncthreads();  // scratch is reused by the next call
    return total;
}

__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(const float *x, const float *__restrict__ w, uint64_t dim,
                                                           float eps, float *y) {
    __shared__ double scratch[kThreads];
    const float *xr = x + blockIdx.x * dim;
    float *yr = y + blockIdx.x * dim;
    double ss = 0.0;
    for (uint64_t i = threadIdx.x; i < dim; i += kThreads) ss += double(xr[i]) * xr[i];
    ss = block_sum(ss, scratch);
    const float scale = 1.0f / sqrtf(float(ss / double(dim)) + eps);
    for (uint64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = xr[i] * scale * w[i];
}

__global__ void __launch_bounds__(kThreads) layernorm_kernel(const float *x, const float *__restrict__ w,
                                                             const float *__restrict__ b, uint64_t dim, float eps,
                                                             float *y) {
    __shared__ double scratch[kThreads];
    const float *xr = x + blockIdx.x * dim;
    float *yr = y + blockIdx.x * dim;
    double mean = 0.0;
    for (uint64_t i = threadIdx.x; i < dim; i += kThreads) mean += xr[i];
    mean = block_sum(mean, scratch) / double(dim);
    double var = 0.0;
    for (uint64_t i = threadIdx.x; i < dim; i += kThreads) var += (xr[i] - mean) * (xr[i] - mean);
    var = block_sum(var, scratch) / double(dim);
    const float scale = 1.0f / sqrtf(float(var) + eps);
    for (uint64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = float(xr[i] - mean) * scale * w[i] + b[i];
}

}  // namespace

int32_t norm(pi_bk_queue *queue, const float *x, const float *w, const float *b, uint64_t n, uint64_t dim, float eps,
             float *y) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: norm: NULL queue");
    if (n == 0 || dim == 0) return PI_BK_OK;
    if (!x || !w || !y) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: norm: NULL x, w or y");
    if (n > INT32_MAX) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: norm: more than 2^31 rows");
    if (int32_t s = prepare(queue, 0)) return s;
    if (b) {
        layernorm_kernel<<<unsigned(n), kThreads, 0, queue->stream>>>(x, w, b, dim, eps, y);
    } else {
        rmsnorm_kernel<<<unsigned(n), kThreads, 0, queue->stream>>>(x, w, dim, eps, y);
    }
    return check_launch("norm");
}

}  // namespace pi::cuda
