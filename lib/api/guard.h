// Every C entry point runs its body through guarded(): exceptions stop here and become a pi_status plus the
// thread-local message, so no exception ever crosses the C boundary.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "api/last_error.h"
#include "common/error.h"
#include "powerinfer/powerinfer.h"

namespace pi::api {

template <typename Body>
pi_status guarded(Body &&body) noexcept {
    try {
        clear_last_error();
        body();
        return PI_OK;
    } catch (const Error &e) {
        set_last_error(e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_last_error("out of memory");
        return PI_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(std::string("internal error: ") + e.what());
        return PI_ERR_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return PI_ERR_INTERNAL;
    }
}

// Argument checks read the same everywhere: the message names the function and the argument.
inline void require(bool ok, const char *function, const char *what) {
    if (!ok) fail(PI_ERR_INVALID_ARGUMENT, std::string(function) + ": " + what);
}

}  // namespace pi::api
