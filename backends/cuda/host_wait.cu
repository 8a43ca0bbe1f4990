// wait_value: the stream waits for a value the host writes into mapped pinned memory. One thread polls the word over
// the bus with a short sleep between reads; the kernels behind it in the stream start when it returns. (The driver's
// cuStreamWaitValue32 would do the same without a kernel, but needs the driver API, which the module does not link.)
// While it spins, the first launch of any other kernel of this module may block the host (lazy loading waits for the
// device to go idle), so the host must not launch a kernel for the first time behind a pending wait (backend.h).
#include "backends/cuda/cuda_backend.h"

namespace pi::cuda {
namespace {

__global__ void wait_value_kernel(const volatile uint32_t *flag, uint32_t value) {
    while (int32_t(*flag - value) < 0) __nanosleep(256);
    __threadfence_system();  // reads of host data by later work happen after the flag was seen
}

}  // namespace

int32_t wait_value(pi_bk_queue *queue, const uint32_t *flag, uint32_t value) {
    if (!queue || !flag) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: wait_value: NULL queue or flag");
    if (int32_t s = prepare(queue, 0)) return s;
    wait_value_kernel<<<1, 1, 0, queue->stream>>>(flag, value);
    return check_launch("wait_value");
}

}  // namespace pi::cuda
