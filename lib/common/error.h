// Errors inside the C++ core. Code below lib/api/ throws pi::Error; lib/api/ turns it into a pi_status and the
// thread-local message. Nothing else crosses the C boundary.
#pragma once

#include <stdexcept>
#include <string>

#include "powerinfer/powerinfer.h"

namespace pi {

class Error : public std::runtime_error {
public:
    Error(pi_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    pi_status status() const { return status_; }

private:
    pi_status status_;
};

[[noreturn]] inline void fail(pi_status status, const std::string &message) { throw Error(status, message); }

}  // namespace pi
