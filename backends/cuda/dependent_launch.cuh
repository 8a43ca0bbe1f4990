// Programmatic dependent launch (Hopper and later, sm_90+): a decode step is a chain of short kernels, each a few
// microseconds to a few tens of them, and between two of them the device idles while the first one's last blocks
// drain and the second one's blocks are launched and scheduled. Launched with the programmatic-serialization
// attribute, the second kernel's blocks are scheduled into the SMs the first one's last wave leaves free, and wait
// there (griddepcontrol.wait) until the first kernel has finished and its writes are visible; only then do they read
// activations or write anything. bench-7b dense decode on the H100: 187-190 tok/s without, 195.6 with (PERFORMANCE.md
// 2026-11-28, second). Prefetching the first 1 KiB of each warp's weight rows into L2 before the wait cost 1.5 %,
// 4 KiB 10 % (the lines compete with the running kernel's stream and are partly evicted before use): not done. The
// decode attention prefetches its chunk's cache rows, which earlier steps wrote.
//
// Rules that keep this safe:
// - Only kernels that call start_after_producer() before their first dependent read and first write are launched
//   with launch_dependent(); every other kernel is launched as usual and waits for its predecessor to complete.
// - start_after_producer() lets the next kernel launch only after the wait, so it launches once every block of this
//   one has passed its wait (this one's last wave): a kernel never runs more than one ahead, and its blocks never
//   wait for blocks that cannot be scheduled.
// - Every block of a dependent kernel executes the wait, including blocks that have no rows to work on (the decode
//   attention's L2-warming blocks, which read only weights, are the one exception: its attention blocks wait), so a
//   grid completes only after its producer and completion stays transitive down the stream.
// The host side turns the attribute on only when the device is sm_90+ and the module carries sm_90 code (an older
// build's code has the waits compiled out); PI_CUDA_PDL=0 turns it off (measurements).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pi::cuda {

namespace dev {

__device__ __forceinline__ void wait_for_producers() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_consumers() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Where a dependent kernel's own work starts: it waits for its producer, then lets the next kernel launch.
__device__ __forceinline__ void start_after_producer() {
    wait_for_producers();
    allow_consumers();
}

// Asks L2 for the 128-byte line holding p. A hint: it never faults and is dropped when it does not help; only
// compiled where a launch can run ahead (sm_90+), the one time there is something to do before the wait.
__device__ __forceinline__ void prefetch_l2_line(const void *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#else
    (void)p;
#endif
}

}  // namespace dev

// Whether launches on the current device may run ahead of their predecessor (see above); cached per device.
bool dependent_launch_enabled();

// Launches `kernel` like <<<grid, block, smem, stream>>>, with programmatic serialization when enabled. The kernel
// must follow the rules above.
template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args &&...args) {
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = &attribute;
    config.numAttrs = dependent_launch_enabled() ? 1 : 0;
    // A failure is left in cudaGetLastError for the caller's check_launch, as a <<<>>> launch leaves it.
    (void)cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace pi::cuda
