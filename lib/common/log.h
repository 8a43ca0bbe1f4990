// Library-wide logging through the user's pi_log_fn (default: warnings and errors to stderr).
#pragma once

#include <string>

#include "powerinfer/powerinfer.h"

namespace pi {

void log(pi_log_level level, const std::string &message);
inline void log_error(const std::string &m) { log(PI_LOG_ERROR, m); }
inline void log_warn(const std::string &m) { log(PI_LOG_WARN, m); }
inline void log_info(const std::string &m) { log(PI_LOG_INFO, m); }
inline void log_debug(const std::string &m) { log(PI_LOG_DEBUG, m); }

}  // namespace pi
