#include "api/last_error.h"

#include "powerinfer/powerinfer.h"

namespace {
// One message per thread, so concurrent sessions never see each other's errors.
thread_local std::string t_last_error;
}  // namespace

namespace pi::api {

void set_last_error(std::string message) { t_last_error = std::move(message); }
void clear_last_error() { t_last_error.clear(); }

}  // namespace pi::api

extern "C" PI_API const char *pi_last_error(void) { return t_last_error.c_str(); }
