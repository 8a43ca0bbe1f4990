// Finds and opens GPU backend modules (DESIGN §4): next to libpowerinfer.so, then <libdir>/powerinfer/, then the
// directories of PI_BACKEND_PATH. Every refusal is explained, so a user learns why the GPU was not used.
#pragma once

#include <string>
#include <vector>

#include "backends/backend.h"

namespace pi {

struct ModuleProbe {
    bool found = false;
    std::string path;                       // the module that was accepted
    const pi_backend_ops *module = nullptr;
    std::string why;                        // when not found: every place tried and what went wrong there
};

// Looks for libpowerinfer-<name>.so. A module is accepted when dlopen succeeds, it exports
// pi_backend_module_get, and its interface version is in range. The handle stays open for the process lifetime
// (modules are not unloaded: their code may be referenced by live objects).
ModuleProbe probe_backend_module(const std::string &name);

// The directories searched, in order.
std::vector<std::string> backend_search_dirs();

}  // namespace pi
