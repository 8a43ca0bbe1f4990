// Status names and versions.
#include "powerinfer/powerinfer.h"

#define PI_STRINGIFY2(x) #x
#define PI_STRINGIFY(x) PI_STRINGIFY2(x)

extern "C" {

PI_API const char *pi_status_string(pi_status status) {
    switch (status) {
        case PI_OK: return "ok";
        case PI_ERR_INVALID_ARGUMENT: return "invalid argument";
        case PI_ERR_IO: return "i/o error";
        case PI_ERR_FORMAT: return "invalid file format";
        case PI_ERR_UNSUPPORTED: return "unsupported";
        case PI_ERR_OUT_OF_MEMORY: return "out of memory";
        case PI_ERR_BACKEND: return "backend error";
        case PI_ERR_CONTEXT_FULL: return "context full";
        case PI_ERR_BUFFER_TOO_SMALL: return "buffer too small";
        case PI_ERR_CANCELLED: return "cancelled";
        case PI_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

PI_API const char *pi_version(void) {
    return PI_STRINGIFY(PI_VERSION_MAJOR) "." PI_STRINGIFY(PI_VERSION_MINOR) "." PI_STRINGIFY(PI_VERSION_PATCH);
}

PI_API uint32_t pi_abi_version(void) { return PI_ABI_VERSION; }

}  // extern "C"
