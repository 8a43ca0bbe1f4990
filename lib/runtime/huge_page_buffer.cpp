#include "runtime/huge_page_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "common/error.h"

namespace pi {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

}  // namespace

HugePageBuffer::HugePageBuffer(size_t bytes, const char *what) {
    bytes_ = round_up(bytes > 0 ? bytes : 1, kHugePage);
    // Over-allocate by one huge page and trim, so the buffer starts on a 2 MiB boundary (THP maps whole aligned
    // 2 MiB ranges only).
    const size_t span = bytes_ + kHugePage;
    void *raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        fail(PI_ERR_OUT_OF_MEMORY, std::string(what) + ": cannot map " + std::to_string(bytes_) + " bytes");
    }
    const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = round_up(r, kHugePage);
    if (aligned > r) ::munmap(raw, aligned - r);
    if (r + span > aligned + bytes_) ::munmap(reinterpret_cast<void *>(aligned + bytes_), r + span - aligned - bytes_);
    memory_ = reinterpret_cast<void *>(aligned);
#ifdef MADV_HUGEPAGE
    ::madvise(memory_, bytes_, MADV_HUGEPAGE);  // a hint: without THP the pages stay 4 KiB
#endif
#ifdef MADV_POPULATE_WRITE
    ::madvise(memory_, bytes_, MADV_POPULATE_WRITE);  // one call instead of a fault per page
#endif
}

HugePageBuffer::~HugePageBuffer() {
    if (memory_) ::munmap(memory_, bytes_);
}

void populate_read(const void *data, size_t bytes) {
#ifdef MADV_POPULATE_READ
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t p = reinterpret_cast<uintptr_t>(data), begin = p / page * page;
    ::madvise(reinterpret_cast<void *>(begin), p + bytes - begin, MADV_POPULATE_READ);
#else
    (void)data;
    (void)bytes;
#endif
}

}  // namespace pi
