/*
 * The internal backend interface (DESIGN §4): one table of C function pointers per backend. The CPU backend is built
 * into libpowerinfer.so and exposes the same table (backends/cpu/cpu_backend.h); GPU backends are modules
 * (libpowerinfer-<name>.so) loaded with dlopen that export `pi_backend_module_get` returning their table.
 *
 * Plain C, so that a module built by another compiler (nvcc, hipcc) works. The host accepts any interface version in
 * [PI_BACKEND_INTERFACE_MIN, PI_BACKEND_INTERFACE_MAX]; the table only grows at the end and struct_size tells how far
 * it goes. Objects a backend makes are freed by that backend.
 *
 * Conventions for every operation:
 * - Returns PI_BK_OK (0) or an error code; the message of the last failure on the calling thread is last_error().
 *   Asynchronous backends may report an error of an earlier operation at a later call or at a synchronization.
 * - Operations are enqueued on a queue and run in order on it; pointers are addresses in the backend's memory (for
 *   the CPU: ordinary host pointers; for a GPU: device or mapped pinned-host addresses from buffer_*). The CPU
 *   backend runs each operation to completion before returning (its queue is trivially in order).
 * - Activations are binary32, row-major: n rows ("tokens") of `dim` values, rows contiguous.
 * - Weight matrices are in ggml's row layout (an n_out x n_in layer has n_out rows of n_in weights), of types F32, F16,
 *   BF16, Q8_0, Q4_0 (numbered as ggml numbers them). For Q8_0/Q4_0 weights the backend rounds x to 8-bit blocks
 *   exactly as the CPU backend does (backends/cpu/q8_activation.h: per block of 32, d = max|x| / 127 rounded to
 *   fp16, q = round-half-even(x / d)) and computes each block's integer dot times d_w * d_x.
 * - Counts that the device produces (the predictor's list lengths) stay in the backend's memory and are read by
 *   later operations from there, so a step needs no synchronization between them.
 */
#ifndef PI_BACKEND_H
#define PI_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define PI_BACKEND_INTERFACE_MIN 1
#define PI_BACKEND_INTERFACE_MAX 2
#define PI_BACKEND_INTERFACE_VERSION 2 /* 2: pi_bk_decode_attention ends with next_weights (a hint a v1 module ignores) */
#define PI_BACKEND_MODULE_ENTRY "pi_backend_module_get"

#ifdef __cplusplus
extern "C" {
#endif

enum pi_bk_status {
    PI_BK_OK = 0,
    PI_BK_ERR_INVALID_ARGUMENT = 1,
    PI_BK_ERR_OUT_OF_MEMORY = 2,
    PI_BK_ERR_UNSUPPORTED = 3, /* a weight type or shape this backend does not implement */
    PI_BK_ERR_DEVICE = 4       /* a driver/runtime failure */
};

/* Where a buffer lives. */
enum pi_bk_memory {
    PI_BK_MEMORY_DEVICE = 0,     /* device memory: counted against the VRAM budget */
    PI_BK_MEMORY_HOST_PINNED = 1 /* page-locked host memory the device can read and write (mapped) */
};

/* Weight types, numbered as ggml numbers them. */
enum pi_bk_weight_type {
    PI_BK_F32 = 0,
    PI_BK_F16 = 1,
    PI_BK_Q4_0 = 2,
    PI_BK_Q8_0 = 8,
    PI_BK_BF16 = 30
};

/* FFN activations a(gate, up) of DESIGN §5 (SiLU: the dense llama FFN). */
enum pi_bk_activation {
    PI_BK_ACT_SILU = 0,  /* silu(gate) * up */
    PI_BK_ACT_REGLU = 1, /* relu(gate) * up */
    PI_BK_ACT_DRELU = 2, /* relu(gate) * relu(up) */
    PI_BK_ACT_RELU = 3   /* relu(up); no gate */
};
#define PI_BK_NO_ACTIVATION 0xffffffffu /* matmul_rmsnorm: a plain product */

enum pi_bk_rope_mode {
    PI_BK_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    PI_BK_ROPE_NEOX = 1    /* rotate (x[i], x[i + rope_dim/2]): falcon */
};

enum pi_bk_kv_type { PI_BK_KV_F16 = 0, PI_BK_KV_F32 = 1 };

typedef struct pi_bk_context pi_bk_context; /* one device, opened */
typedef struct pi_bk_queue pi_bk_queue;     /* an in-order stream of work */
typedef struct pi_bk_event pi_bk_event;     /* a point in a queue that others can wait for */
typedef struct pi_bk_buffer pi_bk_buffer;   /* an allocation */

/* A weight matrix in backend memory: row r starts at data + r * row_stride. */
typedef struct pi_bk_matrix {
    const void *data;
    uint32_t type; /* enum pi_bk_weight_type */
    uint32_t reserved;
    uint64_t n_rows;
    uint64_t n_cols;
    uint64_t row_stride; /* bytes */
} pi_bk_matrix;

/* One layer's FFN as the sparse FFN sees it: row j of gate, up and down_t (and up_bias[j]) belong to the same
 * neuron. On a GPU these are the compacted hot rows; on the CPU the whole layer. down_t is the down projection
 * transposed: one row of n_embd per neuron. */
typedef struct pi_bk_ffn {
    pi_bk_matrix gate;      /* data NULL when the activation has no gate (RELU) */
    pi_bk_matrix up;
    pi_bk_matrix down_t;
    const float *up_bias;   /* NULL or one value per row (opt) */
    uint32_t activation;    /* enum pi_bk_activation */
    uint32_t reserved;
} pi_bk_ffn;

/* One decode token's attention block (attention_decode): the shapes, the rotation and the layer's cache. */
typedef struct pi_bk_decode_attention {
    uint32_t n_head, n_head_kv, head_dim;
    uint32_t rope_dim;     /* values rotated per head; 0: no rotation */
    uint32_t rope_mode;    /* enum pi_bk_rope_mode */
    float rope_freq_base;
    float scale;           /* softmax scale of the scores */
    uint32_t kv_type;      /* enum pi_bk_kv_type */
    uint32_t max_positions; /* positions the cache holds */
    uint32_t reserved;
    void *k_cache, *v_cache; /* the layer's cache, as kv_store takes it */
    /* NULL, or the weights the queue's next operation reads (the output projection): a backend whose attention
     * leaves most of the device idle may pull them into its cache meanwhile. A hint: never changes a result. */
    const void *next_weights;
    uint64_t next_weights_bytes;
} pi_bk_decode_attention;

typedef struct pi_bk_context_params {
    uint32_t struct_size;
    int32_t device;    /* device index; the CPU backend ignores it */
    int32_t n_threads; /* CPU backend: threads of its pool (<= 0: 1) */
    int32_t isa_level; /* CPU backend: -1 the best the CPU has, else 0 scalar, 1 AVX2, 2 AVX-512 */
} pi_bk_context_params;

typedef struct pi_bk_device_info {
    uint32_t struct_size;
    char name[128];
    uint64_t total_bytes;   /* device memory */
    uint64_t free_bytes;    /* free now */
    uint64_t context_bytes; /* memory the driver context and module hold (reported, not budgeted) */
} pi_bk_device_info;

typedef struct pi_backend_ops {
    uint32_t struct_size;
    uint32_t interface_version;
    const char *name; /* "cpu", "cuda", "hip" */

    /* Number of usable devices, or -1 with a message in `why` (e.g. no driver). */
    int32_t (*device_count)(char *why, size_t why_capacity);
    /* The message of the last failed call on this thread ("" when none). */
    const char *(*last_error)(void);

    int32_t (*context_create)(const pi_bk_context_params *params, pi_bk_context **out);
    void (*context_free)(pi_bk_context *ctx);
    int32_t (*device_info)(pi_bk_context *ctx, pi_bk_device_info *out);

    /* ---- memory ---- */
    int32_t (*buffer_alloc)(pi_bk_context *ctx, uint64_t bytes, uint32_t memory, pi_bk_buffer **out);
    void (*buffer_free)(pi_bk_buffer *buffer);
    void *(*buffer_address)(pi_bk_buffer *buffer);   /* the address operations take */
    void *(*buffer_host_address)(pi_bk_buffer *buffer); /* CPU-visible address (pinned host memory), else NULL */

    /* ---- queues, events, copies ---- */
    int32_t (*queue_create)(pi_bk_context *ctx, pi_bk_queue **out);
    void (*queue_free)(pi_bk_queue *queue);
    int32_t (*queue_synchronize)(pi_bk_queue *queue);
    int32_t (*event_create)(pi_bk_context *ctx, pi_bk_event **out);
    void (*event_free)(pi_bk_event *event);
    int32_t (*event_record)(pi_bk_event *event, pi_bk_queue *queue);
    int32_t (*queue_wait_event)(pi_bk_queue *queue, pi_bk_event *event); /* later work on queue waits for event */
    int32_t (*event_synchronize)(pi_bk_event *event);                   /* the calling thread waits */
    /* Asynchronous copies; host memory must stay valid until the queue reaches the copy. */
    int32_t (*copy_to_device)(pi_bk_queue *queue, void *dst, const void *host_src, uint64_t bytes);
    int32_t (*copy_to_host)(pi_bk_queue *queue, void *host_dst, const void *src, uint64_t bytes);

    /* ---- operations ---- */
    /* y (n x w.n_rows) = x (n x w.n_cols) . w^T */
    int32_t (*matmul)(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
    /* The activation predictor of one token: s = fc2 . relu(fc1 . h); neuron i (i < fc2.n_rows) is active when
     * s[i] >= threshold. With slot == NULL every active neuron is listed in `list` (ascending neuron index) and its
     * count stored in *n_list. With slot != NULL (one int32 per neuron: its row in this device's compacted FFN, or -1)
     * the active neurons with slot >= 0 are listed in `list` as their slots and the others in `other` as neuron
     * indices (*n_other), both in ascending neuron order. `scores` (fc2.n_rows floats) may be NULL; when given it
     * receives s. */
    int32_t (*predict)(pi_bk_queue *queue, const pi_bk_matrix *fc1, const pi_bk_matrix *fc2, const float *h,
                       float threshold, const int32_t *slot, int32_t *list, uint32_t *n_list, int32_t *other,
                       uint32_t *n_other, float *scores);
    /* The fused sparse FFN of one token over the rows list[0 .. *n_list):
     *   y[c] += sum_j a_j * down_t[list[j]][c],  a_j = activation(gate[list[j]] . x, up[list[j]] . x + up_bias)
     * Terms with a_j == 0 are skipped (their down rows are not read). The CPU backend's result is bit-identical for a
     * given thread count. */
    int32_t (*sparse_ffn)(pi_bk_queue *queue, const pi_bk_ffn *ffn, const float *x, const int32_t *list,
                          const uint32_t *n_list, float *y);
    /* out (n x dim) = a(gate, up) elementwise (gate ignored, may be NULL, for RELU) */
    int32_t (*ffn_activation)(pi_bk_queue *queue, uint32_t activation, const float *gate, const float *up,
                              uint64_t n, uint64_t dim, float *out);
    /* y (n x dim) = rmsnorm(x) * w, or layernorm(x) * w + b when b != NULL */
    int32_t (*norm)(pi_bk_queue *queue, const float *x, const float *w, const float *b, uint64_t n, uint64_t dim,
                    float eps, float *y);
    /* Rotates the first rope_dim values of each of n_heads heads (head_dim apart) of n rows (row_stride floats
     * apart) in place, row t at position pos0 + t. */
    int32_t (*rope)(pi_bk_queue *queue, float *x, uint64_t n, uint64_t row_stride, uint32_t n_heads, uint32_t head_dim,
                    uint32_t rope_dim, uint32_t pos0, float freq_base, uint32_t mode);
    /* Stores n rows of keys and values (kv_dim floats each, row_stride apart) at positions pos0.. of a layer's cache
     * (kv_type elements, rows of kv_dim in position order), rounding to the cache type. */
    int32_t (*kv_store)(pi_bk_queue *queue, void *k_cache, void *v_cache, uint32_t kv_type, uint32_t kv_dim,
                        uint32_t pos0, uint64_t n, const float *k, const float *v, uint64_t row_stride);
    /* Causal attention of n query rows (n_head * head_dim floats each, row t at position pos0 + t) over cache
     * positions [0, pos0 + t]: out = softmax(scale * q . K^T) . V per head; query head h uses KV head
     * h / (n_head / n_head_kv). */
    int32_t (*attention)(pi_bk_queue *queue, const float *q, const void *k_cache, const void *v_cache,
                         uint32_t kv_type, uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t pos0,
                         uint64_t n, float scale, float *out);
    /* out (n x table.n_cols) = rows tokens[0..n) of the table, dequantized */
    int32_t (*embedding)(pi_bk_queue *queue, const pi_bk_matrix *table, const int32_t *tokens, uint64_t n,
                         float *out);
    /* y[t][i] += x[t][i] (x_row_stride 0: the same row, a bias, for every t) for t < n, i < dim */
    int32_t (*add)(pi_bk_queue *queue, float *y, const float *x, uint64_t n, uint64_t dim, uint64_t x_row_stride);

    /* ---- added after the first tables (check struct_size / NULL before use: PI_BK_HAS_OP) ---- */
    /* y (n x w.n_cols) = x (n x w.n_rows) . w: the product with a matrix stored transposed, e.g. an FFN's down_t (one
     * row of n_embd per neuron) for a prompt. x is used as given for every weight type (no 8-bit rounding: the
     * sparse FFN's down product, axpy over rows, does not round its activations either). */
    int32_t (*matmul_t)(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
    /* Work enqueued after this call waits until the host has written a value v to *flag with
     * (int32_t)(v - value) >= 0 (a sequence number that may wrap). flag is the device address of a 4-byte word in a
     * PI_BK_MEMORY_HOST_PINNED buffer; the host writes its host address (after the data the waiting work reads). This
     * lets the host enqueue work that depends on a result it has not computed yet (the hybrid executor's next layer
     * behind the CPU's partial sum) without a stream synchronization. Only for backends whose queues run
     * asynchronously to the host: a table whose operations complete at the call (the CPU's) leaves it NULL. While a
     * wait is pending, an operation's first use may block the host at the call (CUDA loads a kernel at its first
     * launch and may wait for the device to go idle first): callers run each operation once before they wait. */
    int32_t (*wait_value)(pi_bk_queue *queue, const uint32_t *flag, uint32_t value);
    /* Recording: between capture_begin and capture_end the queue's operations are recorded, not run, and
     * capture_end(launch = 1) runs the recording as one unit (a CUDA graph: one launch for a whole decode step,
     * without the per-kernel launch gaps); launch = 0 discards it. Between the two calls no operation may wait for
     * the queue (event_synchronize, queue_synchronize) and an operation that cannot be recorded (one that must grow
     * the queue's workspace) fails with PI_BK_ERR_UNSUPPORTED; the caller then discards the recording and runs the
     * step without it. Work recorded is launched with the arguments it was recorded with. Optional (NULL: none). */
    int32_t (*capture_begin)(pi_bk_queue *queue);
    int32_t (*capture_end)(pi_bk_queue *queue, int32_t launch);
    /* y (n x w.n_rows) += x (n x w.n_cols) . w^T: matmul's product (the same rounding of x for quantized weights)
     * added to y -- a residual connection in one operation. A backend may refuse n above its decode size (CUDA:
     * 16) with PI_BK_ERR_UNSUPPORTED; callers then use matmul and add. */
    int32_t (*matmul_add)(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, uint64_t n, float *y);
    /* One decode token's attention in one operation: RoPE of its query heads q (n_head * head_dim) and key heads k
     * (n_head_kv * head_dim) at position pos, k and v stored at pos in the cache (rounded to the cache type), then
     * every query head's attention over positions [0, pos] into out -- what rope, kv_store and attention do for one
     * token, with their results; q and k are read only (the rotated heads are not written back). pos_word != NULL:
     * the position is read on the device from *pos_word (backend memory) when the work runs and `pos` is ignored, so a
     * recording can be relaunched at later positions (capture_relaunch); the caller keeps *pos_word <
     * a->max_positions. A backend refuses what it cannot serve this way (CUDA: head_dim not a multiple of 4 or above
     * 256) with PI_BK_ERR_UNSUPPORTED; callers then use the three operations. */
    int32_t (*attention_decode)(pi_bk_queue *queue, const pi_bk_decode_attention *a, const float *q, const float *k,
                                const float *v, uint32_t pos, const uint32_t *pos_word, float *out);
    /* One token's FFN activations through w = [gate; up] stacked (2 * rows rows): out[i] = activation(w_i . x,
     * w_{rows+i} . x) for i < rows -- matmul then ffn_activation, in one operation (SILU, REGLU or DRELU; x rounded
     * as matmul rounds it for quantized weights). */
    int32_t (*matmul_glu)(pi_bk_queue *queue, const pi_bk_matrix *w, uint32_t activation, const float *x, float *out);
    /* Launches the queue's last recording (capture_end with launch = 1) again, unchanged: the same operations with the
     * same arguments and addresses; what changes between launches must be read from memory when the work runs
     * (attention_decode's pos_word, inputs the host writes to pinned memory first). PI_BK_ERR_INVALID_ARGUMENT when
     * there is no recording. Optional (NULL: none). */
    int32_t (*capture_relaunch)(pi_bk_queue *queue);
    /* One token's product with the RMS norm before it folded in: y = w . (x * g / sqrt(mean(x^2) + eps)) -- norm (no
     * bias) then matmul, or then matmul_glu (w = [gate; up], y of w.n_rows / 2) when activation is not
     * PI_BK_NO_ACTIVATION -- without writing the normalized x. Quantized weights round the normalized x as matmul
     * does. The sums may be formed in another order than the two operations form them (float rounding apart). */
    int32_t (*matmul_rmsnorm)(pi_bk_queue *queue, const pi_bk_matrix *w, const float *x, const float *g, float eps,
                              uint32_t activation, float *y);
} pi_backend_ops;

/* Whether a table (of any accepted size) has the entry `member` set. */
#define PI_BK_HAS_OP(ops, member)                                                                              \
    ((ops)->struct_size >= offsetof(pi_backend_ops, member) + sizeof((ops)->member) && (ops)->member != NULL)

typedef const pi_backend_ops *(*pi_backend_module_get_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PI_BACKEND_H */
