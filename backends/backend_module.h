/*
 * The boundary between libpowerinfer.so and a GPU backend module (libpowerinfer-<name>.so), loaded with dlopen.
 *
 * Plain C so that a module built by another compiler works. The host calls the module's one exported function,
 * `pi_backend_module_get`, and accepts any interface version in [PI_BACKEND_INTERFACE_MIN,
 * PI_BACKEND_INTERFACE_MAX]; the table only grows at the end (struct_size tells how far it goes). Objects a module
 * makes are freed by that module.
 */
#ifndef PI_BACKEND_MODULE_H
#define PI_BACKEND_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define PI_BACKEND_INTERFACE_MIN 1
#define PI_BACKEND_INTERFACE_MAX 1
#define PI_BACKEND_MODULE_ENTRY "pi_backend_module_get"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pi_backend_module {
    uint32_t struct_size;
    uint32_t interface_version;
    const char *name; /* "cuda", "hip" */
    /* Number of usable devices, or -1 with a message in `why` (e.g. no driver). */
    int32_t (*device_count)(char *why, size_t why_capacity);
} pi_backend_module;

typedef const pi_backend_module *(*pi_backend_module_get_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PI_BACKEND_MODULE_H */
