// pi_conformance <candidate>: runs every op of a backend against the CPU backend table (the reference) on random
// inputs and prints one line per op x type x shape, then a summary.
//   cuda        the module libpowerinfer-cuda.so, found as the core finds it (lib/runtime/plugin_loader.h)
//   cpu-scalar  the CPU table at ISA level 0 (scalar) against the CPU table at its best level: runs everywhere, and
//               so tests the harness itself in CI.
// Exit status: 0 all rows pass, 1 a row failed (or the candidate could not be opened), 77 the candidate has no
// device here (ctest SKIP_RETURN_CODE), 2 usage.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "cases.h"
#include "runtime/plugin_loader.h"

namespace pi::conformance {

void Env::row(const std::string &op, const std::string &type, const std::string &shape, double tolerance,
              const std::function<double(std::string *)> &body) {
    CaseResult r{op, type, shape, 0.0, tolerance, false, ""};
    try {
        r.error = body(&r.note);
        r.pass = r.error <= tolerance;  // false for NaN
    } catch (const std::exception &e) {
        r.error = INFINITY;
        r.note = e.what();
    }
    ref.release();
    cand.release();
    std::printf("%-4s %-14s %-10s %-52s err=%-10.3g tol=%-8.2g %s\n", r.pass ? "ok" : "FAIL", op.c_str(), type.c_str(),
                shape.c_str(), r.error, r.tolerance, r.note.c_str());
    std::fflush(stdout);
    results.push_back(r);
}

namespace {

int run(const pi_backend_ops *cand_ops, int32_t cand_isa, const std::string &cand_label) {
    std::unique_ptr<Device> ref, cand;
    try {
        ref = std::make_unique<Device>(cpu::cpu_backend_ops(), 0, -1, "cpu");
        cand = std::make_unique<Device>(cand_ops, 0, cand_isa, cand_label);
    } catch (const std::exception &e) {
        std::printf("FAIL: cannot open a backend: %s\n", e.what());
        return 1;
    }
    Env env{*ref, *cand, Rng(20240611), {}};
    dense_cases(env);
    layer_cases(env);
    sparse_cases(env);
    size_t failed = 0;
    for (const CaseResult &r : env.results) failed += r.pass ? 0 : 1;
    std::printf("summary: %zu rows, %zu passed, %zu failed (candidate %s vs reference cpu)\n", env.results.size(),
                env.results.size() - failed, failed, cand_label.c_str());
    return failed ? 1 : 0;
}

}  // namespace
}  // namespace pi::conformance

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s cuda|cpu-scalar\n", argv[0]);
        return 2;
    }
    const std::string which = argv[1];
    if (which == "cpu-scalar") return pi::conformance::run(pi::cpu::cpu_backend_ops(), 0, "cpu-scalar");
    if (which != "cuda") {
        std::fprintf(stderr, "unknown candidate '%s' (cuda or cpu-scalar)\n", which.c_str());
        return 2;
    }
    const pi::ModuleProbe probe = pi::probe_backend_module("cuda");
    if (!probe.found) {
        // No module that loads here (e.g. no CUDA runtime libraries on this machine): nothing to test.
        std::printf("SKIP: the cuda module is not available: %s\n", probe.why.c_str());
        return 77;
    }
    char why[512] = "";
    const int32_t n = probe.module->device_count(why, sizeof why);
    if (n <= 0) {
        std::printf("SKIP: %s has no device: %s\n", probe.path.c_str(), n < 0 ? why : "0 devices");
        return 77;
    }
    std::printf("candidate: %s (%d device(s))\n", probe.path.c_str(), n);
    return pi::conformance::run(probe.module, -1, "cuda");
}
