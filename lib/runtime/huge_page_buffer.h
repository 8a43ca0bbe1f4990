// Anonymous memory for weight copies made at load (FFN bundles, repacked Q4_0 matrices): 2 MiB aligned, asked for
// in transparent huge pages, faulted in with one call. A sparse decode step reads rows scattered over these copies;
// in 4 KiB pages each row costs TLB misses that 2 MiB pages mostly avoid.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pi {

// The weight copies start rows and matrices on cache lines.
constexpr size_t kCacheLine = 64;

inline size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

class HugePageBuffer {
public:
    // Maps at least `bytes` bytes (a whole number of 2 MiB pages). Throws pi::Error(PI_ERR_OUT_OF_MEMORY) naming
    // `what` when the memory cannot be mapped.
    HugePageBuffer(size_t bytes, const char *what);
    ~HugePageBuffer();
    HugePageBuffer(const HugePageBuffer &) = delete;
    HugePageBuffer &operator=(const HugePageBuffer &) = delete;

    uint8_t *data() const { return static_cast<uint8_t *>(memory_); }
    size_t size() const { return bytes_; }

private:
    void *memory_ = nullptr;
    size_t bytes_ = 0;
};

// Hint: map [data, data + bytes) in now (MADV_POPULATE_READ, Linux 5.14; older kernels ignore it), so a copy from a
// file mapping does not fault page by page.
void populate_read(const void *data, size_t bytes);

}  // namespace pi
