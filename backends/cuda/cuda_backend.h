// Internal to the CUDA module: the objects behind the opaque handles of backends/backend.h, error reporting, the
// per-queue workspace, and the operation entry points that module.cu puts in the table. Host-only declarations;
// device code lives in the .cu files and weight_access.cuh.
#pragma once

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/backend.h"

struct pi_bk_context {
    int device;
    int sm_count;
};

// A stream plus what operations on it need between launches. The workspace is stream-ordered memory
// (cudaMallocAsync): operations on one queue run in order, so each may reuse the whole of it.
struct pi_bk_queue {
    int device;
    int sm_count;
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    cublasHandle_t blas;  // created on the first dense product with n > 1
    void *profile;        // PI_CUDA_PROFILE's per-operation timings (op_profile.h), else NULL
    cudaGraphExec_t graph_exec;  // the last recorded step (capture.cu), updated in place by the next
    uint32_t *head_counters;     // device, kHeadCounters words, zero between launches: attention_decode's chunk counts
};

struct pi_bk_event {
    int device;
    cudaEvent_t event;
};

struct pi_bk_buffer {
    int device;
    uint32_t memory;  // enum pi_bk_memory
    void *device_address;
    void *host_address;  // pinned host memory only
    uint64_t bytes;
};

namespace pi::cuda {

// ---- errors: a thread-local message for last_error() ----
const char *last_error();
// Records `message` and returns `status`, so a failing path reads `return fail(PI_BK_ERR_..., "...")`.
int32_t fail(int32_t status, const std::string &message);
// PI_BK_OK when err is cudaSuccess, else records "<what>: <cudaGetErrorString>" and returns the mapped status
// (cudaErrorMemoryAllocation -> PI_BK_ERR_OUT_OF_MEMORY, anything else -> PI_BK_ERR_DEVICE).
int32_t check(cudaError_t err, const char *what);
// After kernel launches: reports a launch failure (bad configuration, no kernel image for this device).
int32_t check_launch(const char *what);

// Makes the queue's device current and its workspace at least `bytes` large (stream-ordered, no host sync).
int32_t prepare(pi_bk_queue *queue, size_t bytes);

// Bytes per row of `n_cols` weights of `type`, or 0 for an unknown type or a quantized n_cols % 32 != 0.
uint64_t row_bytes(uint32_t type, uint64_t n_cols);
// Checks a weight matrix descriptor: known type, data set, row_stride >= row_bytes. `what` names it in the message.
int32_t check_matrix(const pi_bk_matrix *m, const char *what);
inline bool is_quantized(uint32_t type) { return type == PI_BK_Q8_0 || type == PI_BK_Q4_0; }

// ---- pieces shared by operations (enqueued on queue->stream, no host sync) ----
// Quantizes n rows of n_cols floats (n_cols % 32 == 0) into xq (n * n_cols int8) and xd (n * n_cols / 32 floats,
// each the fp16-rounded block scale), exactly as the CPU backend rounds (backends/cpu/q8_activation.h).
int32_t quantize_q8(cudaStream_t stream, const float *x, uint64_t n, uint64_t n_cols, int8_t *xq, float *xd);
// The same rounding written back as floats (fp16(d) * q): the activation of a dense product with quantized weights,
// so that prefill rounds x as decode does.
int32_t quantize_q8_values(cudaStream_t stream, const float *x, uint64_t n, uint64_t n_cols, float *out);
// What a GEMV does with each sum: store it, store max(sum, 0), or add it to y.
enum class GemvOut : int { store, relu, add };
// y (n x w.n_rows) = x . w^T (or as `out` says) through the warp-per-row GEMV kernels (one launch per 4 tokens). x is
// read as floats for float weights and as (xq, xd) (quantize_q8 of x) for quantized ones.
int32_t gemv(cudaStream_t stream, const pi_bk_matrix *w, const float *x, const int8_t *xq, const float *xd,
             uint64_t n, GemvOut out, float *y);
// Workspace bytes an activation of n x n_cols needs in q8 form (int8 values then block scales, 256-aligned).
size_t q8_bytes(uint64_t n, uint64_t n_cols);

// Prompt attention (attention_prompt.cu): query tiles of 64 rows against K/V tiles in shared memory. Serves
// n >= kAttentionPromptMinRows (fewer rows leave most SMs idle: one block per head and 64 rows), head_dim <= 128 and a
// multiple of 4, n < 2^31, 16-byte aligned q and element-aligned caches; the attention op's arguments otherwise.
constexpr uint64_t kAttentionPromptMinRows = 128;
bool attention_prompt_serves(uint32_t kv_type, uint32_t n_head_kv, uint32_t head_dim, uint64_t n, const float *q,
                             const void *k_cache, const void *v_cache);
int32_t attention_prompt(cudaStream_t stream, const float *q, const void *k_cache, const void *v_cache,
                         uint32_t kv_type, uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0,
                         uint64_t n, float scale, float *out);
// Query heads a queue's head_counters serve: attention_decode spreads a head over several blocks up to this many heads.
constexpr uint32_t kHeadCounters = 4096;
// ---- operations of the table ----
int32_t matmul(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
int32_t predict(pi_bk_queue *queue, const pi_bk_matrix *fc1, const pi_bk_matrix *fc2, const float *h,
                float threshold, const int32_t *slot, int32_t *list, uint32_t *n_list, int32_t *other,
                uint32_t *n_other, float *scores);
int32_t sparse_ffn(pi_bk_queue *queue, const pi_bk_ffn *ffn, const float *x, const int32_t *list,
                   const uint32_t *n_list, float *y);
int32_t ffn_activation(pi_bk_queue *queue, uint32_t activation, const float *gate, const float *up, uint64_t n,
                       uint64_t dim, float *out);
int32_t norm(pi_bk_queue *queue, const float *x, const float *w, const float *b, uint64_t n, uint64_t dim, float eps,
             float *y);
int32_t rope(pi_bk_queue *queue, float *x, uint64_t n, uint64_t row_stride, uint32_t n_heads, uint32_t head_dim,
             uint32_t rope_dim, uint32_t pos0, float freq_base, uint32_t mode);
int32_t kv_store(pi_bk_queue *queue, void *k_cache, void *v_cache, uint32_t kv_type, uint32_t kv_dim, uint32_t pos0,
                 uint64_t n, const float *k, const float *v, uint64_t row_stride);
int32_t attention(pi_bk_queue *queue, const float *q, const void *k_cache, const void *v_cache, uint32_t kv_type,
                  uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0, uint64_t n, float scale,
                  float *out);
int32_t embedding(pi_bk_queue *queue, const pi_bk_matrix *table, const int32_t *tokens, uint64_t n, float *out);
int32_t add(pi_bk_queue *queue, float *y, const float *x, uint64_t n, uint64_t dim, uint64_t x_row_stride);
int32_t matmul_t(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
int32_t matmul_add(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
int32_t wait_value(pi_bk_queue *queue, const uint32_t *flag, uint32_t value);
int32_t attention_decode(pi_bk_queue *queue, const pi_bk_decode_attention *a, const float *q, const float *k,
                         const float *v, uint32_t pos, const uint32_t *pos_word, float *out);
int32_t matmul_glu(pi_bk_queue *queue, const pi_bk_matrix *w, uint32_t activation, const float *x, float *out);
int32_t capture_relaunch(pi_bk_queue *queue);
int32_t matmul_rmsnorm(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, const float *g, float eps,
                       uint32_t activation, float *y);
int32_t capture_begin(pi_bk_queue *queue);
int32_t capture_end(pi_bk_queue *queue, int32_t launch);

// ---- memory, queues, events (memory.cu) ----
int32_t buffer_alloc(pi_bk_context *ctx, uint64_t bytes, uint32_t memory, pi_bk_buffer **out);
void buffer_free(pi_bk_buffer *buffer);
void *buffer_address(pi_bk_buffer *buffer);
void *buffer_host_address(pi_bk_buffer *buffer);
int32_t queue_create(pi_bk_context *ctx, pi_bk_queue **out);
void queue_free(pi_bk_queue *queue);
int32_t queue_synchronize(pi_bk_queue *queue);
int32_t event_create(pi_bk_context *ctx, pi_bk_event **out);
void event_free(pi_bk_event *event);
int32_t event_record(pi_bk_event *event, pi_bk_queue *queue);
int32_t queue_wait_event(pi_bk_queue *queue, pi_bk_event *event);
int32_t event_synchronize(pi_bk_event *event);
int32_t copy_to_device(pi_bk_queue *queue, void *dst, const void *host_src, uint64_t bytes);
int32_t copy_to_host(pi_bk_queue *queue, void *host_dst, const void *src, uint64_t bytes);

}  // namespace pi::cuda
