// On/off switches read from the environment (measurement and diagnostic switches such as PI_CPU_PROFILE and
// PI_HYBRID_PROFILE).
#pragma once

#include <cstdlib>

namespace pi {

// Whether the variable is set to something other than "" or "0".
inline bool env_switch_on(const char *name) {
    const char *v = std::getenv(name);
    return v && *v && !(v[0] == '0' && v[1] == '\0');
}

}  // namespace pi
