#include "common/log.h"

#include <cstdio>
#include <mutex>

namespace pi {
namespace {

struct LogSink {
    std::mutex mutex;
    pi_log_fn callback = nullptr;
    void *user_data = nullptr;
    pi_log_level max_level = PI_LOG_WARN;
};

LogSink &sink() {
    static LogSink instance;
    return instance;
}

const char *level_name(pi_log_level level) {
    switch (level) {
        case PI_LOG_ERROR: return "error";
        case PI_LOG_WARN: return "warning";
        case PI_LOG_INFO: return "info";
        case PI_LOG_DEBUG: return "debug";
    }
    return "log";
}

}  // namespace

void log(pi_log_level level, const std::string &message) {
    LogSink &s = sink();
    // The lock also serializes the user's callback, so it never runs concurrently with itself.
    std::lock_guard<std::mutex> lock(s.mutex);
    if (level > s.max_level) return;
    if (s.callback) {
        s.callback(level, message.c_str(), s.user_data);
    } else {
        std::fprintf(stderr, "powerinfer: %s: %s\n", level_name(level), message.c_str());
    }
}

}  // namespace pi

extern "C" PI_API void pi_set_log_callback(pi_log_fn callback, void *user_data, pi_log_level max_level) {
    pi::LogSink &s = pi::sink();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.callback = callback;
    s.user_data = callback ? user_data : nullptr;
    s.max_level = callback ? max_level : PI_LOG_WARN;
}
