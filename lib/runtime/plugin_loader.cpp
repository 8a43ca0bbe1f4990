#include "runtime/plugin_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <sstream>

#include "common/log.h"

namespace pi {
namespace {

std::string directory_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

std::vector<std::string> backend_search_dirs() {
    std::vector<std::string> dirs;
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&backend_search_dirs), &info) && info.dli_fname) {
        dirs.push_back(directory_of(info.dli_fname));
    }
#ifdef PI_INSTALL_FULL_LIBDIR
    dirs.push_back(std::string(PI_INSTALL_FULL_LIBDIR) + "/powerinfer");
#endif
    if (const char *env = std::getenv("PI_BACKEND_PATH")) {
        std::stringstream list(env);
        std::string dir;
        while (std::getline(list, dir, ':')) {
            if (!dir.empty()) dirs.push_back(dir);
        }
    }
    return dirs;
}

ModuleProbe probe_backend_module(const std::string &name) {
    ModuleProbe probe;
    const std::string file = "libpowerinfer-" + name + ".so";
    for (const std::string &dir : backend_search_dirs()) {
        const std::string path = dir + "/" + file;
        void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *err = dlerror();
            probe.why += (probe.why.empty() ? "" : "; ") + std::string(err ? err : path + ": dlopen failed");
            continue;
        }
        auto get = reinterpret_cast<pi_backend_module_get_fn>(dlsym(handle, PI_BACKEND_MODULE_ENTRY));
        const pi_backend_ops *module = get ? get() : nullptr;
        std::string refusal;
        if (!get) {
            refusal = path + ": no symbol " PI_BACKEND_MODULE_ENTRY;
        } else if (!module || module->struct_size < sizeof(pi_backend_ops)) {
            refusal = path + ": invalid module table";
        } else if (module->interface_version < PI_BACKEND_INTERFACE_MIN ||
                   module->interface_version > PI_BACKEND_INTERFACE_MAX) {
            refusal = path + ": interface version " + std::to_string(module->interface_version) +
                      " outside the supported range [" + std::to_string(PI_BACKEND_INTERFACE_MIN) + ", " +
                      std::to_string(PI_BACKEND_INTERFACE_MAX) + "]";
        }
        if (!refusal.empty()) {
            log_info("backend module refused: " + refusal);
            probe.why += (probe.why.empty() ? "" : "; ") + refusal;
            dlclose(handle);
            continue;
        }
        probe.found = true;
        probe.path = path;
        probe.module = module;
        return probe;
    }
    if (probe.why.empty()) probe.why = file + " not found (no search directory)";
    log_info("backend module '" + name + "' not available: " + probe.why);
    return probe;
}

}  // namespace pi
