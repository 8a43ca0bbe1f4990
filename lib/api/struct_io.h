// The struct_size rule of the ABI: the library reads (or writes) only the bytes the caller's struct_size covers,
// so a client built against an older header (smaller struct) or a newer one (larger struct) both work.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pi::api {

// Copies the caller's struct over `defaults` (already filled by the matching *_init): the first
// min(struct_size, sizeof(T)) bytes. Throws PI_ERR_INVALID_ARGUMENT when struct_size is below `min_size` (the size
// of the first published version of T: no caller can legitimately have less).
void read_versioned(const void *caller_struct, void *defaults, size_t our_size, size_t min_size,
                    const char *function, const char *type_name);

// Writes `ours` into the caller's struct: min(struct_size, sizeof) bytes, keeping the caller's struct_size.
void write_versioned(void *caller_struct, const void *ours, size_t our_size, size_t min_size,
                     const char *function, const char *type_name);

// The *_init_sized rule: copies the first min(size, our_size) bytes of `defaults` (a struct whose first field is
// uint32_t struct_size) into the caller's struct and sets its struct_size to that count. A size too small to hold
// struct_size writes nothing; NULL is a no-op.
void init_versioned(void *caller_struct, size_t caller_size, const void *defaults, size_t our_size);

template <typename T>
T read_params(const T *caller, const T &defaults, size_t min_size, const char *function, const char *type_name) {
    T result = defaults;
    if (caller) read_versioned(caller, &result, sizeof(T), min_size, function, type_name);
    result.struct_size = sizeof(T);
    return result;
}

}  // namespace pi::api
