// The thread-local message behind pi_last_error().
#pragma once

#include <string>

namespace pi::api {

void set_last_error(std::string message);
void clear_last_error();

}  // namespace pi::api
