/*
 * libpowerinfer: the public C API.
 *
 * This header is the only ABI surface of libpowerinfer.so. It is pure C99 and follows the rules of
 * docs/API_GUIDELINES.md:
 *   - every fallible call returns pi_status (PI_OK = 0) and sets a thread-local message (pi_last_error);
 *   - out-params are untouched on failure, except the needed size on PI_ERR_BUFFER_TOO_SMALL;
 *   - parameter and info structs start with `uint32_t struct_size`, are filled by their *_init call (a macro that
 *     passes the caller's sizeof to *_init_sized), and only grow at the end; the library reads (or writes) only the
 *     bytes the caller's struct_size covers;
 *   - pi_*_free(NULL) is a no-op;
 *   - enums are never renumbered.
 *
 * Threads: a loaded pi_model is immutable and may be shared by any number of threads and sessions. A pi_session is
 * used by one thread at a time.
 */
#ifndef POWERINFER_H
#define POWERINFER_H

#include <stddef.h>
#include <stdint.h>

#define PI_VERSION_MAJOR 0
#define PI_VERSION_MINOR 2
#define PI_VERSION_PATCH 0

/* Bumped only on an incompatible change; it is the SONAME's number: libpowerinfer.so.<PI_ABI_VERSION>. */
#define PI_ABI_VERSION 1

#if defined(_WIN32)
#  if defined(PI_BUILDING_LIBRARY)
#    define PI_API __declspec(dllexport)
#  else
#    define PI_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define PI_API __attribute__((visibility("default")))
#else
#  define PI_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------------------
 * Basic types, status codes, versions
 * ------------------------------------------------------------------------------------------------------------- */

typedef int32_t pi_token;
typedef struct pi_model pi_model;
typedef struct pi_session pi_session;

typedef enum {
    PI_OK = 0,
    PI_ERR_INVALID_ARGUMENT = 1,
    PI_ERR_IO = 2,
    PI_ERR_FORMAT = 3,
    PI_ERR_UNSUPPORTED = 4,
    PI_ERR_OUT_OF_MEMORY = 5,
    PI_ERR_BACKEND = 6,
    PI_ERR_CONTEXT_FULL = 7,
    PI_ERR_BUFFER_TOO_SMALL = 8,
    PI_ERR_CANCELLED = 9,
    PI_ERR_INTERNAL = 10
} pi_status;

/* A short constant English name of a status ("invalid argument"); never NULL, also for unknown values. */
PI_API const char *pi_status_string(pi_status status);

/* The message of the last failed call on the calling thread; "" when none. Never NULL. Valid until the next
 * call into the library on the same thread. */
PI_API const char *pi_last_error(void);

/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
PI_API const char *pi_version(void);

/* PI_ABI_VERSION of the library actually loaded; a client compares it with the PI_ABI_VERSION it was built with. */
PI_API uint32_t pi_abi_version(void);

/* ---------------------------------------------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum {
    PI_LOG_ERROR = 0,
    PI_LOG_WARN = 1,
    PI_LOG_INFO = 2,
    PI_LOG_DEBUG = 3
} pi_log_level;

/* Called on whatever library thread produced the message (usually the caller's). `message` is NUL-terminated and
 * valid only during the call. */
typedef void (*pi_log_fn)(pi_log_level level, const char *message, void *user_data);

/* Installs a process-wide log sink and its level threshold. NULL restores the default (messages at PI_LOG_WARN and
 * more severe to stderr). Thread-safe. */
PI_API void pi_set_log_callback(pi_log_fn callback, void *user_data, pi_log_level max_level);

/* ---------------------------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------------------------- */

/* Load progress: called on the loading thread with a fraction in [0, 1]. A non-zero return cancels the load, which
 * then fails with PI_ERR_CANCELLED. */
typedef int (*pi_progress_fn)(float fraction, void *user_data);

/* vram_budget: this value means "all free device memory minus a reserve" (docs/API.md); 0 means CPU only. */
#define PI_VRAM_BUDGET_AUTO UINT64_MAX

typedef struct pi_model_params {
    uint32_t struct_size;     /* sizeof(pi_model_params) as the caller knows it; set by pi_model_params_init */
    const char *backend;      /* "auto" (default), "cpu", "cuda" or "hip" */
    int32_t device;           /* device index for GPU backends; default 0 */
    uint64_t vram_budget;     /* bytes the library may allocate on the device; default PI_VRAM_BUDGET_AUTO */
    int32_t n_threads;        /* CPU threads for loading and as the session default; 0 = one per core */
    int32_t use_mmap;         /* non-zero (default): map the file; 0: read it into memory */
    pi_progress_fn progress;  /* optional load progress callback */
    void *progress_user_data;
    /* --- appended after 0.1.0; a caller whose struct_size ends before a field gets its default --- */
    float sparse_threshold;   /* a neuron is predicted active when its predictor score >= this. Default NAN: the
                                 file's powerinfer.sparse_threshold, else 0. -INFINITY: every neuron active */
    /* The placement planner (docs/PLANNER.md). (The padding after sparse_threshold belongs to the first published
     * size, so the planner's fields start at the next 8-byte boundary.) */
    const char *profile_path; /* an activation profile (pi_session_save_profile) for the planner: used for layers
                                 whose file has no blk.N.ffn_act_freq tensor. Default NULL */
    /* The KV cache reserved on the GPU is plan_n_ctx tokens for each of plan_n_sessions sessions; a session beyond
     * that gets PI_ERR_OUT_OF_MEMORY unless it fits the rest of the budget. 0 is PI_ERR_INVALID_ARGUMENT for these
     * three. */
    uint32_t plan_n_ctx;      /* default 2048, at most 2^24 */
    uint32_t plan_n_sessions; /* default 1, at most 65536 */
    uint32_t neuron_group;    /* FFN neurons per GPU tile: the GPU takes whole groups; default 32, at most 65536 */
    /* Cost-model parameters; 0 (the default) = measured (CPU bandwidth, cached per host) or the built-in default.
     * Negative, NaN or infinite values are PI_ERR_INVALID_ARGUMENT. Pin all of them for reproducible plans. */
    double cost_gpu_bandwidth_gbps;  /* GPU memory read bandwidth, GB/s (1e9 bytes/s) */
    double cost_cpu_bandwidth_gbps;  /* CPU memory read bandwidth, GB/s */
    double cost_sync_us;             /* the GPU waiting for the CPU's part of a split layer, microseconds */
    double cost_launch_us;           /* one GPU kernel launch, microseconds */
    double cost_transfer_latency_us; /* fixed cost of one host<->device copy, microseconds */
    double cost_transfer_gbps;       /* host<->device copy bandwidth, GB/s */
} pi_model_params;

/* Fills the struct with the defaults. The macro passes the size of the struct this header declares, so the library
 * writes exactly as many bytes as the caller's struct has, whichever library version it runs against. */
PI_API void pi_model_params_init_sized(pi_model_params *p, size_t size);
/* The entry point of programs built against 0.1.0 (it fills the 56 bytes the struct had then). */
PI_API void (pi_model_params_init)(pi_model_params *p);
#define pi_model_params_init(p) pi_model_params_init_sized((p), sizeof(pi_model_params))

/* Loads a GGUF (or PowerInfer PWRI) file. params may be NULL for the defaults. */
PI_API pi_status pi_model_load(const char *path, const pi_model_params *params, pi_model **out);

PI_API void pi_model_free(pi_model *model);

typedef struct pi_model_info {
    uint32_t struct_size;    /* set by the caller (pi_model_info_init) before pi_model_get_info */
    const char *arch;        /* "llama", "bamboo", "falcon", "opt"; owned by the model */
    const char *name;        /* general.name, or "" */
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_ff;
    uint32_t n_head;
    uint32_t n_head_kv;
    int32_t is_sparse;       /* non-zero when the file has activation predictors (PowerInfer layout) */
    uint64_t n_params;       /* number of weights in all tensors */
    uint64_t file_bytes;     /* bytes of tensor data in the file */
    uint64_t gpu_bytes;      /* bytes of weights placed on a GPU (0 on the CPU backend) */
    const char *ffn_activation; /* "silu", "reglu", "drelu", "relu"; owned by the model */
    uint64_t decode_weight_bytes; /* bytes of weights one dense decode step reads: every matrix, but one row of the
                                     token embedding (all of it when the output head is tied to it) */
    uint64_t ffn_weight_bytes;       /* of those, the FFN matrices (gate, up, down) of all layers: a sparse step
                                        reads about the active fraction of them */
    uint64_t predictor_weight_bytes; /* the activation predictors (fc1, fc2) of all layers: read by sparse steps */
} pi_model_info;

/* Fills the struct with the defaults. The macro passes the size of the struct this header declares, so the library
 * writes exactly as many bytes as the caller's struct has, whichever library version it runs against. */
PI_API void pi_model_info_init_sized(pi_model_info *p, size_t size);
/* The entry point of programs built against 0.1.0 (it fills the 96 bytes the struct had then). */
PI_API void (pi_model_info_init)(pi_model_info *p);
#define pi_model_info_init(p) pi_model_info_init_sized((p), sizeof(pi_model_info))
PI_API pi_status pi_model_get_info(const pi_model *model, pi_model_info *out);

/* Measures this machine's memory read bandwidth with n_threads threads (0 = one per core): the denominator of the
 * decode roofline. Streams a buffer several times larger than the last-level cache (about a second of work) and
 * writes the best rate in GB/s (1e9 bytes/s). */
PI_API pi_status pi_measure_memory_bandwidth(int32_t n_threads, double *gb_per_s);

/* ---------------------------------------------------------------------------------------------------------------
 * Placement: where the planner puts each layer's parts (DESIGN §6, docs/PLANNER.md)
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct pi_placement pi_placement;

/* Where a layer's activation frequencies came from, in the planner's order of preference. */
typedef enum {
    PI_FREQ_PRIOR = 0,   /* no profile: a uniform prior (0.1 per neuron) */
    PI_FREQ_FILE = 1,    /* the model file's blk.N.ffn_act_freq tensor */
    PI_FREQ_PROFILE = 2, /* pi_model_params.profile_path */
    PI_FREQ_DENSE = 3    /* the model has no predictors: every neuron runs for every token (frequency 1) */
} pi_freq_source;

/* Where a cost-model parameter came from. */
typedef enum {
    PI_COST_DEFAULT = 0,  /* the built-in default */
    PI_COST_MEASURED = 1, /* measured now (and cached) */
    PI_COST_CACHED = 2,   /* the per-host cache file ($XDG_CACHE_HOME/powerinfer/cost-<host>.txt) */
    PI_COST_PINNED = 3    /* given in pi_model_params */
} pi_cost_source;

/* Plans the placement of the model at `path` from the file alone: metadata, tensor shapes and types, and the small
 * blk.N.ffn_act_freq tensors; no weight is read and nothing is allocated on any device (milliseconds, also for a
 * 70B file). Uses params' vram_budget (PI_VRAM_BUDGET_AUTO: the free memory of the GPU; 0 when there is no GPU
 * backend), n_threads (the CPU bandwidth is measured at that thread count unless pinned), plan_n_ctx,
 * plan_n_sessions, neuron_group, profile_path and the cost_* fields; params may be NULL for the defaults.
 * The plan is the one pi_model_load would make with the same params and cost parameters. */
PI_API pi_status pi_plan_placement(const char *path, const pi_model_params *params, pi_placement **out);

PI_API void pi_placement_free(pi_placement *placement);

typedef struct pi_placement_info {
    uint32_t struct_size;        /* set by pi_placement_info_init */
    uint32_t n_layer;
    uint64_t budget_bytes;       /* the VRAM budget planned for */
    uint64_t gpu_bytes;          /* everything the plan puts on the GPU, scratch and KV reservation included;
                                    <= budget_bytes */
    uint64_t scratch_bytes;      /* the GPU workspace (counted in gpu_bytes when anything is on the GPU) */
    uint64_t kv_bytes;           /* KV cache reserved on the GPU: plan_n_ctx x plan_n_sessions of its layers */
    uint32_t plan_n_ctx;
    uint32_t plan_n_sessions;
    uint32_t neuron_group;
    int32_t output_on_gpu;       /* non-zero: the output head runs on the GPU */
    uint32_t n_gpu_attention;    /* layers whose attention, KV cache and predictor are on the GPU */
    uint32_t reserved0;          /* 0 */
    uint64_t n_gpu_neurons;      /* FFN neurons on the GPU, all layers */
    uint64_t n_neurons;          /* FFN neurons, all layers */
    double step_seconds;         /* predicted time of one decode step */
    double tokens_per_second;    /* 1 / step_seconds */
    /* The cost parameters the plan used, in the units of pi_model_params, and where they came from. */
    double gpu_bandwidth_gbps;
    double cpu_bandwidth_gbps;
    double sync_us;
    double launch_us;
    double transfer_latency_us;
    double transfer_gbps;
    int32_t cpu_bandwidth_source; /* a pi_cost_source */
    int32_t gpu_cost_source;      /* a pi_cost_source: PI_COST_PINNED when GPU bandwidth, sync and launch all are */
    uint64_t memory_unit_bytes;   /* the planner's memory unit (every object rounded up to whole units) */
} pi_placement_info;

/* Fills the struct with the defaults; the macro passes the size of the struct this header declares (see
 * pi_model_params_init). Foreign-language bindings call the _sized function with their struct's size. */
PI_API void pi_placement_info_init_sized(pi_placement_info *p, size_t size);
#define pi_placement_info_init(p) pi_placement_info_init_sized((p), sizeof(pi_placement_info))
PI_API pi_status pi_placement_get_info(const pi_placement *placement, pi_placement_info *out);

typedef struct pi_placement_layer_info {
    uint32_t struct_size;     /* set by pi_placement_layer_info_init */
    int32_t attention_on_gpu; /* non-zero: attention, KV cache and predictor on the GPU */
    uint32_t n_gpu_neurons;   /* the layer's hottest neurons on the GPU (pi_placement_gpu_neurons lists them) */
    uint32_t n_neurons;       /* n_ff */
    uint64_t gpu_bytes;       /* what the layer puts on the GPU: weights, hot rows and its KV reservation */
    double t_gpu;             /* predicted seconds of the GPU path of one decode step (0: nothing on the GPU) */
    double t_cpu;             /* predicted seconds of the CPU path (0: nothing on the CPU) */
    double time;              /* the layer's predicted seconds per step: max(t_gpu, t_cpu) + sync for a split */
    int32_t freq_source;      /* a pi_freq_source */
    uint32_t reserved0;       /* 0 */
    double active_neurons;    /* expected firing neurons per token (sum of the frequencies) */
    double gpu_active_neurons; /* of those, on the GPU */
} pi_placement_layer_info;

/* Fills the struct with the defaults; the macro passes the size of the struct this header declares (see
 * pi_model_params_init). Foreign-language bindings call the _sized function with their struct's size. */
PI_API void pi_placement_layer_info_init_sized(pi_placement_layer_info *p, size_t size);
#define pi_placement_layer_info_init(p) pi_placement_layer_info_init_sized((p), sizeof(pi_placement_layer_info))
/* layer >= n_layer is PI_ERR_INVALID_ARGUMENT. */
PI_API pi_status pi_placement_get_layer(const pi_placement *placement, uint32_t layer, pi_placement_layer_info *out);

/* The indices of the layer's GPU neurons in ascending order (the backend stores their rows compacted in this order).
 * On success *n_out is the count. When `capacity` is below it the call returns PI_ERR_BUFFER_TOO_SMALL and *n_out is
 * the needed count (out may be NULL with capacity 0). */
PI_API pi_status pi_placement_gpu_neurons(const pi_placement *placement, uint32_t layer, uint32_t *out,
                                          size_t capacity, size_t *n_out);

/* ---------------------------------------------------------------------------------------------------------------
 * Tokenizer
 * ------------------------------------------------------------------------------------------------------------- */

/* Encodes `len` bytes of UTF-8 `text`. On success *n_out is the token count. When `capacity` is too small the call
 * returns PI_ERR_BUFFER_TOO_SMALL and *n_out is the needed count (out may then be NULL with capacity 0). */
PI_API pi_status pi_tokenize(const pi_model *model, const char *text, size_t len, int add_bos, pi_token *out,
                             size_t capacity, size_t *n_out);

/* The raw bytes of one token's text (not NUL-terminated; SentencePiece's U+2581 becomes a space, byte tokens
 * become their byte). Buffer rule as pi_tokenize. A piece may be part of a UTF-8 character: use pi_detokenizer for
 * streaming whole characters. */
PI_API pi_status pi_token_to_piece(const pi_model *model, pi_token token, char *buf, size_t capacity,
                                   size_t *n_out);

PI_API pi_token pi_token_bos(const pi_model *model); /* -1 when the model has none */
PI_API pi_token pi_token_eos(const pi_model *model); /* -1 when the model has none */

/* Incremental detokenizer: feed tokens one at a time and receive only whole UTF-8 characters. */
typedef struct pi_detokenizer pi_detokenizer;

PI_API pi_status pi_detokenizer_create(const pi_model *model, pi_detokenizer **out);
PI_API void pi_detokenizer_free(pi_detokenizer *detok);

/* Appends `token` and writes the newly completed UTF-8 text to buf (buffer rule as pi_tokenize; on
 * PI_ERR_BUFFER_TOO_SMALL the token is not consumed). */
PI_API pi_status pi_detokenizer_push(pi_detokenizer *detok, pi_token token, char *buf, size_t capacity,
                                     size_t *n_out);

/* ---------------------------------------------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------------------------------------------- */

/* The element type of a session's key/value cache. F32 doubles its memory and keeps keys and values unrounded. */
typedef enum {
    PI_KV_F16 = 0,
    PI_KV_F32 = 1
} pi_kv_type;

/* Whether a session computes only the FFN neurons its predictors select (DESIGN §5). Decode steps (one token) take
 * the sparse path; prompts of several tokens take the dense path (the union of active neurons over many tokens is
 * nearly all of them), unless profiling is on, when the predictors also run (and count) for every prompt token. */
typedef enum {
    PI_SPARSE_AUTO = 0, /* sparse when the model has activation predictors, else dense */
    PI_SPARSE_OFF = 1,  /* always dense: every neuron computed */
    PI_SPARSE_ON = 2    /* sparse; PI_ERR_INVALID_ARGUMENT at pi_session_create when the model has no predictors */
} pi_sparse_mode;

typedef struct pi_session_params {
    uint32_t struct_size;    /* set by pi_session_params_init */
    uint32_t n_ctx;          /* context length in tokens; 0 = the model's training context (default 2048 cap) */
    uint32_t n_batch;        /* tokens per forward pass during pi_session_eval; default 512 */
    int32_t n_threads;       /* 0 = the model's n_threads */
    uint64_t seed;           /* sampler seed; default 0 */
    float temperature;       /* 0 = greedy argmax; default 0.8 */
    int32_t top_k;           /* 0 = off; default 40 */
    float top_p;             /* 1 = off; default 0.95 */
    float min_p;             /* 0 = off; default 0.05 */
    float repeat_penalty;    /* 1 = off; default 1.1 */
    int32_t repeat_last_n;   /* tokens the penalty looks back over; default 64 */
    /* --- appended after 0.1.0; a caller whose struct_size ends before a field gets its default --- */
    int32_t kv_type;         /* a pi_kv_type; default PI_KV_F16. Another value is PI_ERR_INVALID_ARGUMENT */
    int32_t sparse;          /* a pi_sparse_mode; default PI_SPARSE_AUTO */
    float sparse_threshold;  /* default NAN: the model's (pi_model_params.sparse_threshold) */
    int32_t profile_activations; /* non-zero: count how often each FFN neuron is predicted active (see
                                    pi_session_activation_counts); default 0 */
} pi_session_params;

/* Fills the struct with the defaults. The macro passes the size of the struct this header declares, so the library
 * writes exactly as many bytes as the caller's struct has, whichever library version it runs against. */
PI_API void pi_session_params_init_sized(pi_session_params *p, size_t size);
/* The entry point of programs built against 0.1.0 (it fills the 56 bytes the struct had then). */
PI_API void (pi_session_params_init)(pi_session_params *p);
#define pi_session_params_init(p) pi_session_params_init_sized((p), sizeof(pi_session_params))

/* params may be NULL for the defaults. */
PI_API pi_status pi_session_create(pi_model *model, const pi_session_params *params, pi_session **out);
PI_API void pi_session_free(pi_session *session);

/* Appends `n` tokens and runs the model over them; afterwards the last token's logits are readable. Fails with
 * PI_ERR_CONTEXT_FULL (appending nothing) when n_past + n would exceed n_ctx. */
PI_API pi_status pi_session_eval(pi_session *session, const pi_token *tokens, size_t n);

/* The token step: samples the next token from the current logits with the session's settings, appends it and runs
 * one forward step. Needs logits (a previous eval or step). */
PI_API pi_status pi_session_step(pi_session *session, pi_token *out);

/* The current logits (n_vocab floats); valid until the next call that changes the session. */
PI_API pi_status pi_session_logits(pi_session *session, const float **out, size_t *n_vocab);

/* Forgets the context (n_past becomes 0) and reseeds the sampler. */
PI_API pi_status pi_session_reset(pi_session *session);

/* Tokens in the context; 0 for NULL. */
PI_API size_t pi_session_n_past(const pi_session *session);

/* Keeps the first n_keep tokens of the context and forgets the rest (n_keep > n_past: PI_ERR_INVALID_ARGUMENT,
 * nothing changes). Afterwards the logits are unavailable, even when n_keep == n_past, until the next
 * pi_session_eval or pi_session_step: evaluate at least one token before stepping. The sampler is not reseeded.
 * The cache rows of the forgotten positions are overwritten by later evaluations. */
PI_API pi_status pi_session_truncate(pi_session *session, size_t n_keep);

/* Asks the pi_session_eval or pi_session_step running on `session` in another thread to stop. That call then fails
 * with PI_ERR_CANCELLED at its next layer boundary, and everything is as before it: the context, the logits and the
 * sampler's random state (the session stays usable).
 * This is the one call that may run concurrently with another call on the same session; `session` must stay alive
 * until it returns. The request is cleared when an eval or step begins, so a cancel made while no eval or step is
 * running has no effect, and neither has one arriving after the running call finished its last layer (that call
 * succeeds). Fails (PI_ERR_INVALID_ARGUMENT) only for NULL. Not async-signal-safe: like every call, it sets the
 * calling thread's last-error message. */
PI_API pi_status pi_session_cancel(pi_session *session);

/* Session state: a versioned binary snapshot of a session (docs/SESSION_STATE.md): the tokens of the context, the
 * key/value cache rows of those positions, the logits when available and the sampler's random state. Loading it
 * into a session of the same model (the same file's weights) and KV type continues exactly where the saved session
 * was: the same logits and, with the same sampling settings, the same sampled tokens. The sampling settings
 * themselves (temperature, top_k, ...) and n_ctx are the loading session's; they are not part of the state.
 * The session is used by one thread at a time, as for every other call but pi_session_cancel. */

/* The exact number of bytes pi_session_state_save writes for the session as it is now. */
PI_API pi_status pi_session_state_size(const pi_session *session, size_t *out);

/* Writes the state into the caller's buffer. On success *n_out is the number of bytes written. When `capacity` is
 * too small the call returns PI_ERR_BUFFER_TOO_SMALL, *n_out is the needed size and nothing is written (buf may be
 * NULL with capacity 0 to ask for the size). The buffer needs no alignment. PI_ERR_UNSUPPORTED when the sampler has
 * drawn more than 2^32 random numbers since its seed (docs/SESSION_STATE.md). */
PI_API pi_status pi_session_state_save(const pi_session *session, void *buf, size_t capacity, size_t *n_out);

/* Replaces the session's context with a saved state (`size` bytes at `buf`, which the caller keeps owning).
 * Everything is checked before anything changes; on any failure the session is unchanged:
 *   PI_ERR_FORMAT            not a state, an unknown format version, truncated or corrupt (checksum, structure);
 *   PI_ERR_INVALID_ARGUMENT  saved from another model (the message names what differs: arch, n_layer, n_embd,
 *                            n_head_kv, head_dim, n_vocab or the weights) or with another kv_type;
 *   PI_ERR_CONTEXT_FULL      the state holds more tokens than this session's n_ctx. */
PI_API pi_status pi_session_state_load(pi_session *session, const void *buf, size_t size);

/* ---------------------------------------------------------------------------------------------------------------
 * Activation sparsity: measured sparsity and profiles
 * ------------------------------------------------------------------------------------------------------------- */

/* The measured sparsity since the session was created or pi_session_reset_stats: for each layer the mean fraction
 * of its FFN neurons predicted active per token (0 for a layer no predictor has run in). `capacity` floats at `out`;
 * when it is below the model's n_layer the call returns PI_ERR_BUFFER_TOO_SMALL and *n_layer is the needed count.
 * *n_tokens (may be NULL) receives the number of tokens the predictors ran for. */
PI_API pi_status pi_session_sparsity(const pi_session *session, float *out, size_t capacity, size_t *n_layer,
                                     uint64_t *n_tokens);

/* The FFN weight rows the CPU actually read per decode token, since the session was created or
 * pi_session_reset_stats: for each layer the mean fraction of its FFN rows (gate, up and down rows together; a dense
 * ffn_down matrix counts whole) the CPU executor's decode steps read. Sparse steps: below the predicted-active
 * fraction where the activation lets rows be skipped (ReGLU: a gate <= 0 skips the neuron's up and down rows; dReLU
 * and ReLU likewise). Dense steps: every gate and up row, and, where ffn_down is stored transposed (PowerInfer's
 * layout), only the down rows of neurons whose activation is not zero. 0 for a layer no decode step of the CPU
 * executor has run in (prompts, the hybrid and GPU executors). This is what a decode step's roofline counts as FFN
 * bytes. Buffer rule as pi_session_sparsity. */
PI_API pi_status pi_session_ffn_rows_read(const pi_session *session, float *out, size_t capacity, size_t *n_layer);

/* The predictor weights the CPU actually read per token, since the session was created or pi_session_reset_stats:
 * for each layer the mean fraction of its predictor's weight bytes (fc1 and fc2 together) the CPU executor read.
 * Below 1 where fc2 is kept transposed (float predictors): the rows of hidden units that ReLU set to zero are
 * skipped. 1 where the predictor ran its row dots; 0 for a layer whose predictor the CPU executor never ran (dense
 * sessions without profiling, the hybrid and GPU executors). With pi_session_ffn_rows_read, what a sparse decode
 * step's roofline counts. Buffer rule as pi_session_sparsity. */
PI_API pi_status pi_session_predictor_read(const pi_session *session, float *out, size_t capacity, size_t *n_layer);

/* Per-neuron activation counts of one layer (sessions created with profile_activations): counts[i] is how many
 * tokens predicted neuron i active; *n_tokens how many tokens were profiled. Buffer rule as pi_session_sparsity
 * (*n_out: the layer's neuron count). PI_ERR_INVALID_ARGUMENT when profiling is off or layer >= n_layer. */
PI_API pi_status pi_session_activation_counts(const pi_session *session, uint32_t layer, uint64_t *counts,
                                              size_t capacity, size_t *n_out, uint64_t *n_tokens);

/* Writes the session's activation profile to `path` as GGUF: per layer an F32 tensor blk.N.ffn_act_freq of per-neuron
 * frequencies (counts / tokens) and the key powerinfer.profile.tokens; the placement planner reads it (and
 * tools/add_profile.py copies it into a model file). PI_ERR_INVALID_ARGUMENT when profiling is off or nothing was
 * profiled yet, PI_ERR_IO when the file cannot be written. */
PI_API pi_status pi_session_save_profile(const pi_session *session, const char *path);

/* Clears the sparsity statistics and activation counts (pi_session_reset keeps them). */
PI_API pi_status pi_session_reset_stats(pi_session *session);

#ifdef __cplusplus
}
#endif

#endif /* POWERINFER_H */
