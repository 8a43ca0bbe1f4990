// Programmatic dependent launch (sm_90+) for the decode step's weight-streaming kernels. A decode step is a chain of
// short kernels, each reading its own weights (independent of the step) and the previous kernel's output; between
// two of them the GPU drains the last wave of one and ramps up the next (a few us each, 5 boundaries per layer). With
// PDL the next kernel is launched while the previous one's last blocks still run: its blocks ask L2 for their
// weight rows (prefetch.cuh's line form: nothing that depends on the previous kernel), then wait for it to complete
// (griddepcontrol.wait: all its memory visible) before they read activations or write anything. Every kernel so
// launched must wait before touching activations (launch_kernel sets the attribute only for such kernels), and lets
// its own dependent launch as soon as it starts. On older GPUs both instructions compile to nothing.
#pragma once

#include <cstdint>

namespace pi::cuda::dev {

// The next kernel in the queue (when launched with PDL) may start being scheduled now.
__device__ __forceinline__ void let_next_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Blocks until the kernels this one depends on have completed and their writes are visible (no-op without PDL).
__device__ __forceinline__ void wait_for_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Blocks of a launch that can be resident at once on the GPUs this is built for (H100: 132 SMs x 8 blocks of 256
// threads): only they can start before the previous kernel ends, so only they prefetch (a later block would ask L2
// for the lines its own loads request a moment later: extra requests for nothing).
constexpr uint32_t kFirstWaveBlocks = 1024;

// One warp asks L2 for bytes [p, p + bytes) of a weight row, a 128-byte line per lane per step (fire and forget),
// when its block is in the first wave.
__device__ __forceinline__ void prefetch_row_l2(const void *p, uint64_t bytes, int lane) {
    if (blockIdx.x >= kFirstWaveBlocks) return;
    const char *c = static_cast<const char *>(p);
    for (uint64_t off = uint64_t(lane) * 128; off < bytes; off += 32 * 128) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(c + off));
    }
}

}  // namespace pi::cuda::dev
