// Asking the L2 cache to fetch bytes that later work will read, without waiting for them: decode work that leaves
// the memory bus idle (attention over a short context is latency-bound, a split layer waits for the CPU's partial
// sum) can have the next product's weights streamed into L2 meanwhile, and that product then reads them from L2
// (several TB/s more than HBM). Purely a hint: nothing is written and results never change. sm_90 issues one bulk
// prefetch per 16 KiB piece (the TMA engine streams it); older GPUs one prefetch per 128-byte line.
#pragma once

#include <cstdint>

namespace pi::cuda::dev {

constexpr uint64_t kPrefetchPiece = 16 * 1024;

// Worker `worker` of `n_workers` (threads of any grid) asks for its share of [p, p + bytes): the pieces worker,
// worker + n_workers, ... Only whole 16-byte units inside the range are asked for (the bulk form's alignment), so no
// byte outside it is touched.
__device__ __forceinline__ void prefetch_l2(const void *p, uint64_t bytes, uint64_t worker, uint64_t n_workers) {
    if (!p || bytes == 0) return;
    const uint64_t begin = (reinterpret_cast<uint64_t>(p) + 15) & ~uint64_t(15);
    const uint64_t end = (reinterpret_cast<uint64_t>(p) + bytes) & ~uint64_t(15);
    if (end <= begin) return;
    for (uint64_t at = begin + worker * kPrefetchPiece; at < end; at += n_workers * kPrefetchPiece) {
        const uint64_t size = end - at < kPrefetchPiece ? end - at : kPrefetchPiece;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(at), "r"(uint32_t(size)) : "memory");
#else
        for (uint64_t line = at; line < at + size; line += 128) {
            asm volatile("prefetch.global.L2 [%0];" ::"l"(line));
        }
#endif
    }
}

}  // namespace pi::cuda::dev
