// Small elementwise operations: embedding rows, add (residual / bias), FFN activation. Each is one grid-stride
// launch reading and writing its operands once.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/weight_access.cuh"

namespace pi::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(uint64_t total) {
    const uint64_t g = (total + kThreads - 1) / kThreads;
    return unsigned(g < 65535 ? g : 65535);  // grid-stride loops cover the rest
}

// A token outside the table gives a row of zeros: the kernel cannot report it without a host sync, and the host
// checks tokens against the vocabulary before they reach a backend.
template <uint32_t T>
__global__ void embedding_kernel(const uint8_t *__restrict__ table, uint64_t row_stride, uint32_t n_rows,
                                 uint32_t n_cols, const int32_t *__restrict__ tokens, float *__restrict__ out) {
    const uint64_t t = blockIdx.y;
    const int32_t tok = tokens[t];
    const bool valid = tok >= 0 && uint32_t(tok) < n_rows;
    const uint8_t *row = table + size_t(valid ? tok : 0) * row_stride;
    for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < n_cols; c += gridDim.x * blockDim.x) {
        out[t * n_cols + c] = valid ? dev::load_weight<T>(row, c) : 0.0f;
    }
}

__global__ void add_kernel(float *y, const float *x, uint64_t n, uint64_t dim, uint64_t x_row_stride) {
    const uint64_t total = n * dim;
    for (uint64_t idx = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; idx < total;
         idx += uint64_t(gridDim.x) * blockDim.x) {
        const uint64_t t = idx / dim, i = idx % dim;
        y[idx] += x[t * x_row_stride + i];
    }
}

__global__ void activation_kernel(uint32_t act, const float *gate, const float *up, uint64_t total, float *out) {
    for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < total;
         i += uint64_t(gridDim.x) * blockDim.x) {
        out[i] = dev::dense_activation(act, act == PI_BK_ACT_RELU ? 0.0f : gate[i], up[i]);
    }
}

}  // namespace

int32_t embedding(pi_bk_queue *queue, const pi_bk_matrix *table, const int32_t *tokens, uint64_t n, float *out) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: embedding: NULL queue");
    if (int32_t s = check_matrix(table, "embedding table")) return s;
    if (n == 0 || table->n_cols == 0) return PI_BK_OK;
    if (!tokens || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: embedding: NULL tokens or out");
    if (n > 65535) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: embedding: more than 65535 tokens in one call");
    if (int32_t s = prepare(queue, 0)) return s;
    const dim3 grid(unsigned((table->n_cols + kThreads - 1) / kThreads), unsigned(n));
    const auto *data = static_cast<const uint8_t *>(table->data);
    const uint64_t st = table->row_stride;
    const uint32_t rows = uint32_t(table->n_rows), cols = uint32_t(table->n_cols);
    cudaStream_t s = queue->stream;
    switch (table->type) {
        case PI_BK_F32: embedding_kernel<PI_BK_F32><<<grid, kThreads, 0, s>>>(data, st, rows, cols, tokens, out); break;
        case PI_BK_F16: embedding_kernel<PI_BK_F16><<<grid, kThreads, 0, s>>>(data, st, rows, cols, tokens, out); break;
        case PI_BK_BF16: embedding_kernel<PI_BK_BF16><<<grid, kThreads, 0, s>>>(data, st, rows, cols, tokens, out); break;
        case PI_BK_Q8_0: embedding_kernel<PI_BK_Q8_0><<<grid, kThreads, 0, s>>>(data, st, rows, cols, tokens, out); break;
        case PI_BK_Q4_0: embedding_kernel<PI_BK_Q4_0><<<grid, kThreads, 0, s>>>(data, st, rows, cols, tokens, out); break;
    }
    return check_launch("embedding");
}

int32_t add(pi_bk_queue *queue, float *y, const float *x, uint64_t n, uint64_t dim, uint64_t x_row_stride) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: add: NULL queue");
    if (n * dim == 0) return PI_BK_OK;
    if (!y || !x) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: add: NULL y or x");
    if (int32_t s = prepare(queue, 0)) return s;
    add_kernel<<<grid_for(n * dim), kThreads, 0, queue->stream>>>(y, x, n, dim, x_row_stride);
    return check_launch("add");
}

int32_t ffn_activation(pi_bk_queue *queue, uint32_t activation, const float *gate, const float *up, uint64_t n,
                       uint64_t dim, float *out) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: ffn_activation: NULL queue");
    if (activation > PI_BK_ACT_RELU) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: ffn_activation: unknown activation " + std::to_string(activation));
    }
    if (n * dim == 0) return PI_BK_OK;
    if (!up || !out || (activation != PI_BK_ACT_RELU && !gate)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: ffn_activation: NULL gate, up or out");
    }
    if (int32_t s = prepare(queue, 0)) return s;
    activation_kernel<<<grid_for(n * dim), kThreads, 0, queue->stream>>>(activation, gate, up, n * dim, out);
    return check_launch("ffn_activation");
}

}  // namespace pi::cuda
