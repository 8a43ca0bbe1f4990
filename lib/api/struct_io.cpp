#include "api/struct_io.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"

namespace pi::api {
namespace {

uint32_t caller_size(const void *caller_struct, size_t min_size, const char *function, const char *type_name) {
    uint32_t size = 0;
    std::memcpy(&size, caller_struct, sizeof size);
    if (size < min_size) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(function) + ": " + type_name + ".struct_size is " +
                                          std::to_string(size) + ", expected at least " + std::to_string(min_size) +
                                          " (initialize the struct with its _init function)");
    }
    return size;
}

}  // namespace

void read_versioned(const void *caller_struct, void *defaults, size_t our_size, size_t min_size,
                    const char *function, const char *type_name) {
    const size_t n = std::min<size_t>(caller_size(caller_struct, min_size, function, type_name), our_size);
    std::memcpy(defaults, caller_struct, n);
}

void write_versioned(void *caller_struct, const void *ours, size_t our_size, size_t min_size,
                     const char *function, const char *type_name) {
    const uint32_t size = caller_size(caller_struct, min_size, function, type_name);
    const size_t n = std::min<size_t>(size, our_size);
    std::memcpy(caller_struct, ours, n);
    std::memcpy(caller_struct, &size, sizeof size);  // the caller's struct_size stays theirs
}

void init_versioned(void *caller_struct, size_t caller_size, const void *defaults, size_t our_size) {
    if (!caller_struct || caller_size < sizeof(uint32_t)) return;
    const size_t n = std::min(caller_size, our_size);
    std::memcpy(caller_struct, defaults, n);
    const uint32_t size = static_cast<uint32_t>(n);
    std::memcpy(caller_struct, &size, sizeof size);
}

}  // namespace pi::api
