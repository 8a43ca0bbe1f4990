// prefetch: the table's cache hint (backends/backend.h). One small launch whose threads each ask L2 for a few
// 16 KiB pieces (prefetch.cuh) and exit; the fetches go on in the memory system while later work on the queue runs.
// At most three quarters of the L2 is asked for: more would evict the first pieces before they are read.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/prefetch.cuh"

namespace pi::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) prefetch_kernel(const void *p, uint64_t bytes) {
    dev::prefetch_l2(p, bytes, uint64_t(blockIdx.x) * blockDim.x + threadIdx.x, uint64_t(gridDim.x) * blockDim.x);
}

}  // namespace

uint64_t prefetch_cap(const pi_bk_queue *queue, uint64_t bytes) {
    const uint64_t cap = uint64_t(queue->l2_bytes) / 4 * 3;
    return bytes < cap ? bytes : cap;
}

int32_t prefetch(pi_bk_queue *queue, const void *p, uint64_t bytes) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: prefetch: NULL queue");
    bytes = prefetch_cap(queue, bytes);
    if (!p || bytes < 16) return PI_BK_OK;  // nothing worth asking for
    if (int32_t s = prepare(queue, 0)) return s;
    const uint64_t pieces = (bytes + dev::kPrefetchPiece - 1) / dev::kPrefetchPiece;
    const unsigned blocks = unsigned((pieces + kThreads - 1) / kThreads);
    prefetch_kernel<<<blocks, kThreads, 0, queue->stream>>>(p, bytes);
    return check_launch("prefetch");
}

}  // namespace pi::cuda
