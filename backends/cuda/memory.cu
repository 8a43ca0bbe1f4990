// Buffers, queues, events and copies: thin wrappers over the CUDA runtime that turn its errors into statuses.
// A queue is one non-blocking stream, so work on it never serializes against the legacy default stream.
#include <new>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_profile.h"

namespace pi::cuda {

int32_t prepare(pi_bk_queue *queue, size_t bytes) {
    if (int32_t s = check(cudaSetDevice(queue->device), "cudaSetDevice")) return s;
    if (bytes <= queue->workspace_bytes) return PI_BK_OK;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(queue->stream, &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone) {
        return fail(PI_BK_ERR_UNSUPPORTED, "cuda: the workspace cannot grow while a step is recorded");
    }
    // A recording (capture.cu) holds the old workspace's address: it cannot be relaunched after the move. Rare (the
    // workspace grows with a longer prompt), so the queue is drained before the recording goes.
    if (queue->graph_exec) {
        if (int32_t s = check(cudaStreamSynchronize(queue->stream), "cudaStreamSynchronize")) return s;
        cudaGraphExecDestroy(queue->graph_exec);
        queue->graph_exec = nullptr;
    }
    // Grow by at least half again, so a sequence of slightly larger requests does not reallocate every time.
    size_t want = bytes + bytes / 2;
    want = (want + 0xfffff) & ~size_t(0xfffff);
    if (queue->workspace) {
        if (int32_t s = check(cudaFreeAsync(queue->workspace, queue->stream), "cudaFreeAsync(workspace)")) return s;
        queue->workspace = nullptr;
        queue->workspace_bytes = 0;
    }
    void *p = nullptr;
    if (int32_t s = check(cudaMallocAsync(&p, want, queue->stream), "cudaMallocAsync(workspace)")) return s;
    queue->workspace = p;
    queue->workspace_bytes = want;
    return PI_BK_OK;
}

int32_t buffer_alloc(pi_bk_context *ctx, uint64_t bytes, uint32_t memory, pi_bk_buffer **out) {
    if (!ctx || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: buffer_alloc: NULL context or out");
    if (memory != PI_BK_MEMORY_DEVICE && memory != PI_BK_MEMORY_HOST_PINNED) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: buffer_alloc: unknown memory kind " + std::to_string(memory));
    }
    if (int32_t s = check(cudaSetDevice(ctx->device), "cudaSetDevice")) return s;
    auto *b = new (std::nothrow) pi_bk_buffer{ctx->device, memory, nullptr, nullptr, bytes};
    if (!b) return fail(PI_BK_ERR_OUT_OF_MEMORY, "cuda: buffer_alloc: out of host memory");
    const size_t n = bytes ? bytes : 1;  // a zero-byte buffer still has a distinct address
    int32_t s;
    if (memory == PI_BK_MEMORY_DEVICE) {
        s = check(cudaMalloc(&b->device_address, n), "cudaMalloc");
    } else {
        s = check(cudaHostAlloc(&b->host_address, n, cudaHostAllocMapped | cudaHostAllocPortable), "cudaHostAlloc");
        if (s == PI_BK_OK) s = check(cudaHostGetDevicePointer(&b->device_address, b->host_address, 0),
                                     "cudaHostGetDevicePointer");
        if (s != PI_BK_OK && b->host_address) cudaFreeHost(b->host_address);
    }
    if (s != PI_BK_OK) {
        cudaGetLastError();  // an allocation failure is not sticky; clear it so later calls do not see it
        delete b;
        if (s == PI_BK_ERR_OUT_OF_MEMORY) {
            return fail(s, "cuda: cannot allocate " + std::to_string(bytes) + " bytes of " +
                               (memory == PI_BK_MEMORY_DEVICE ? "device" : "pinned host") + " memory");
        }
        return s;
    }
    *out = b;
    return PI_BK_OK;
}

void buffer_free(pi_bk_buffer *buffer) {
    if (!buffer) return;
    cudaSetDevice(buffer->device);
    if (buffer->memory == PI_BK_MEMORY_DEVICE) {
        cudaFree(buffer->device_address);
    } else {
        cudaFreeHost(buffer->host_address);
    }
    delete buffer;
}

void *buffer_address(pi_bk_buffer *buffer) { return buffer ? buffer->device_address : nullptr; }
void *buffer_host_address(pi_bk_buffer *buffer) { return buffer ? buffer->host_address : nullptr; }

int32_t queue_create(pi_bk_context *ctx, pi_bk_queue **out) {
    if (!ctx || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: queue_create: NULL context or out");
    if (int32_t s = check(cudaSetDevice(ctx->device), "cudaSetDevice")) return s;
    auto *q = new (std::nothrow)
        pi_bk_queue{ctx->device, ctx->sm_count, nullptr, nullptr, 0, nullptr, nullptr, nullptr, nullptr};
    if (!q) return fail(PI_BK_ERR_OUT_OF_MEMORY, "cuda: queue_create: out of host memory");
    if (int32_t s = check(cudaStreamCreateWithFlags(&q->stream, cudaStreamNonBlocking), "cudaStreamCreate")) {
        delete q;
        return s;
    }
    // Allocated here, not on first use: a recording (stream capture) may not allocate. Zeroed in the queue's order,
    // before anything else it runs.
    const size_t counter_bytes = kHeadCounters * sizeof(uint32_t);
    int32_t s = check(cudaMalloc(&q->head_counters, counter_bytes), "cudaMalloc(head counters)");
    if (s == PI_BK_OK) s = check(cudaMemsetAsync(q->head_counters, 0, counter_bytes, q->stream), "zeroing head counters");
    if (s != PI_BK_OK) {
        if (q->head_counters) cudaFree(q->head_counters);
        cudaStreamDestroy(q->stream);
        delete q;
        return s;
    }
    *out = q;
    return PI_BK_OK;
}

void queue_free(pi_bk_queue *queue) {
    if (!queue) return;
    cudaSetDevice(queue->device);
    cudaStreamSynchronize(queue->stream);  // work still in flight may use the workspace
    op_profile_release(queue);
    if (queue->blas) cublasDestroy(queue->blas);
    if (queue->graph_exec) cudaGraphExecDestroy(queue->graph_exec);
    if (queue->workspace) cudaFreeAsync(queue->workspace, queue->stream);
    cudaStreamSynchronize(queue->stream);
    if (queue->head_counters) cudaFree(queue->head_counters);
    cudaStreamDestroy(queue->stream);
    delete queue;
}

int32_t queue_synchronize(pi_bk_queue *queue) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: queue_synchronize: NULL queue");
    const int32_t s = check(cudaStreamSynchronize(queue->stream), "queue work");
    if (s == PI_BK_OK) op_profile_collect(queue);
    return s;
}

int32_t event_create(pi_bk_context *ctx, pi_bk_event **out) {
    if (!ctx || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: event_create: NULL context or out");
    if (int32_t s = check(cudaSetDevice(ctx->device), "cudaSetDevice")) return s;
    auto *e = new (std::nothrow) pi_bk_event{ctx->device, nullptr};
    if (!e) return fail(PI_BK_ERR_OUT_OF_MEMORY, "cuda: event_create: out of host memory");
    // No timing: a timing event costs more to record and to wait for.
    if (int32_t s = check(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "cudaEventCreate")) {
        delete e;
        return s;
    }
    *out = e;
    return PI_BK_OK;
}

void event_free(pi_bk_event *event) {
    if (!event) return;
    cudaSetDevice(event->device);
    cudaEventDestroy(event->event);
    delete event;
}

int32_t event_record(pi_bk_event *event, pi_bk_queue *queue) {
    if (!event || !queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: event_record: NULL event or queue");
    return check(cudaEventRecord(event->event, queue->stream), "cudaEventRecord");
}

int32_t queue_wait_event(pi_bk_queue *queue, pi_bk_event *event) {
    if (!event || !queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: queue_wait_event: NULL event or queue");
    return check(cudaStreamWaitEvent(queue->stream, event->event, 0), "cudaStreamWaitEvent");
}

int32_t event_synchronize(pi_bk_event *event) {
    if (!event) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: event_synchronize: NULL event");
    return check(cudaEventSynchronize(event->event), "event work");
}

int32_t copy_to_device(pi_bk_queue *queue, void *dst, const void *host_src, uint64_t bytes) {
    if (!queue || ((!dst || !host_src) && bytes)) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: copy_to_device: NULL argument");
    if (!bytes) return PI_BK_OK;
    return check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, queue->stream), "copy_to_device");
}

int32_t copy_to_host(pi_bk_queue *queue, void *host_dst, const void *src, uint64_t bytes) {
    if (!queue || ((!host_dst || !src) && bytes)) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: copy_to_host: NULL argument");
    if (!bytes) return PI_BK_OK;
    return check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, queue->stream), "copy_to_host");
}

}  // namespace pi::cuda
