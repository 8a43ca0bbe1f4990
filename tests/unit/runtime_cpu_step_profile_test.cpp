// PI_CPU_PROFILE: the report's arithmetic, and a session's profile against what the session's own statistics say it
// read (runtime/cpu_step_profile.h).
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "runtime/cpu_step_profile.h"
#include "session_test_helpers.h"

using namespace pi::test;
using pi::CpuStepProfile;

namespace {

// The report's line for one part, or "" when it has none.
std::string line_of(const std::string &report, const std::string &part) {
    const size_t at = report.find("  " + part + " ");
    if (at == std::string::npos) return {};
    return report.substr(at, report.find('\n', at) - at);
}

// The numbers of a part's line, in order: ms, %, MB, GB/s (GB/s missing when the line says "-").
std::vector<double> numbers_of(const std::string &line, const std::string &part) {
    std::vector<double> out;
    const char *p = line.c_str() + 2 + part.size();
    while (*p) {
        char *end = nullptr;
        const double v = std::strtod(p, &end);
        if (end == p) {
            ++p;
            continue;
        }
        out.push_back(v);
        p = end;
    }
    return out;
}

// What `body` writes to stderr (file descriptor 2).
template <typename Body>
std::string capture_stderr(Body &&body) {
    std::fflush(stderr);
    std::FILE *tmp = std::tmpfile();
    REQUIRE(tmp);
    const int saved = ::dup(2);
    REQUIRE(::dup2(::fileno(tmp), 2) == 2);
    body();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::string out;
    std::rewind(tmp);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) out.append(buf, n);
    std::fclose(tmp);
    return out;
}

// Big enough that each part reads some kilobytes (the report counts MB to three decimals). F32 weights.
TinyModelSpec profiled_spec(bool predictors) {
    TinyModelSpec spec;
    spec.n_embd = 256;
    spec.n_layer = 2;
    spec.n_ff = 512;
    spec.n_head = 8;
    spec.n_head_kv = 8;
    spec.n_ctx_train = 256;
    spec.predictors = predictors;
    return spec;
}

}  // namespace

TEST_CASE("cpu step profile: the report is per step, shares of the step and bytes over time", "[profile]") {
    CpuStepProfile p;
    CHECK(p.report().empty());  // no step: nothing to say
    p.add(CpuStepProfile::kQkv, 0.030, 2'400'000'000);
    p.add(CpuStepProfile::kFfn, 0.010, 200'000'000);
    p.add(CpuStepProfile::kGlue, 0.020, 0);
    p.end_step();
    p.end_step();
    const std::string r = p.report();
    INFO(r);
    CHECK(r.find("PI_CPU_PROFILE: 2 decode steps, 30.000 ms and 1300.000 MB a step,   43.3 GB/s") == 0);
    const std::vector<double> qkv = numbers_of(line_of(r, "q|k|v projections"), "q|k|v projections");
    REQUIRE(qkv.size() == 4);
    CHECK(qkv[0] == Approx(15.0));    // ms a step
    CHECK(qkv[1] == Approx(50.0));    // % of the step
    CHECK(qkv[2] == Approx(1200.0));  // MB a step
    CHECK(qkv[3] == Approx(80.0));    // GB/s
    const std::vector<double> ffn = numbers_of(line_of(r, "FFN"), "FFN");
    REQUIRE(ffn.size() == 4);
    CHECK(ffn[3] == Approx(20.0));
    const std::string glue = line_of(r, "norms, residuals");
    CHECK(glue.find("- GB/s") != std::string::npos);  // no bytes: no speed
    CHECK(numbers_of(glue, "norms, residuals").size() == 3);
}

TEST_CASE("cpu step profile: PI_CPU_PROFILE reports a session's decode steps and the bytes its statistics count",
          "[profile]") {
    for (const bool sparse : {true, false}) {
        DYNAMIC_SECTION((sparse ? "sparse" : "dense") << " session") {
            const TinyModelSpec spec = profiled_spec(sparse);
            ModelHandle model(spec, "cpu_profile");
            const size_t n_steps = 5;
            std::vector<float> rows_read(spec.n_layer);
            const std::string report = capture_stderr([&] {
                ScopedEnv env("PI_CPU_PROFILE", "1");
                pi_session_params p = session_params(SessionSettings());
                p.sparse = sparse ? PI_SPARSE_ON : PI_SPARSE_OFF;
                pi_session *s = nullptr;
                REQUIRE(pi_session_create(model.model, &p, &s) == PI_OK);
                const std::vector<pi_token> prompt = prompt_tokens(4, 1);
                REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);  // prefill: not profiled
                std::vector<pi_token> out;
                REQUIRE(generate(s, n_steps, out) == PI_OK);
                if (sparse) {
                    size_t n_layer = 0;
                    REQUIRE(pi_session_ffn_rows_read(s, rows_read.data(), rows_read.size(), &n_layer) == PI_OK);
                }
                pi_session_free(s);  // prints the report
            });
            INFO(report);
            REQUIRE(report.find("PI_CPU_PROFILE: " + std::to_string(n_steps) + " decode steps") != std::string::npos);

            const double E = spec.n_embd, F = spec.n_ff, L = spec.n_layer, f32 = 4;
            const std::vector<double> qkv = numbers_of(line_of(report, "q|k|v projections"), "q|k|v projections");
            REQUIRE(qkv.size() == 4);
            CHECK(qkv[2] == Approx(L * 3 * E * E * f32 / 1e6).margin(0.001));
            const std::vector<double> o = numbers_of(line_of(report, "output projection"), "output projection");
            REQUIRE(o.size() == 4);
            CHECK(o[2] == Approx(L * E * E * f32 / 1e6).margin(0.001));

            const double all_rows = L * 3 * F * E * f32;  // gate, up and down rows of n_embd floats
            double ffn_bytes = sparse ? 0.0 : all_rows;   // dense: every row
            for (float fraction : rows_read) ffn_bytes += fraction * 3 * F * E * f32;  // sparse: the rows it read
            const std::vector<double> ffn = numbers_of(line_of(report, "FFN"), "FFN");
            REQUIRE(ffn.size() == 4);
            CHECK(ffn[2] == Approx(ffn_bytes / 1e6).margin(0.001));
            if (sparse) CHECK(ffn[2] < all_rows / 1e6);

            const std::vector<double> pred = numbers_of(line_of(report, "predictor"), "predictor");
            if (sparse) {
                REQUIRE(pred.size() == 4);
                CHECK(pred[2] > 0.0);
            } else {
                REQUIRE(pred.size() == 3);  // no predictor ran: no bytes, no time to speak of
                CHECK(pred[2] == 0.0);
            }
            // The parts' times add up to the step's.
            double ms = 0;
            for (unsigned part = 0; part < CpuStepProfile::kPartCount; ++part) {
                const std::string name = CpuStepProfile::part_name(CpuStepProfile::Part(part));
                const std::vector<double> v = numbers_of(line_of(report, name), name);
                REQUIRE(v.size() >= 3);
                ms += v[0];
            }
            const double total = std::strtod(report.c_str() + report.find("decode steps, ") + 14, nullptr);
            CHECK(ms == Approx(total).margin(0.01));
        }
    }
}

TEST_CASE("cpu step profile: off unless PI_CPU_PROFILE is set to something other than 0", "[profile]") {
    ModelHandle model(profiled_spec(false), "cpu_profile_off");
    for (const char *value : {"0", ""}) {
        const std::string report = capture_stderr([&] {
            ScopedEnv env("PI_CPU_PROFILE", value);
            pi_session_params p = session_params(SessionSettings());
            pi_session *s = nullptr;
            REQUIRE(pi_session_create(model.model, &p, &s) == PI_OK);
            std::vector<pi_token> out;
            const std::vector<pi_token> prompt = prompt_tokens(2, 1);
            REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);
            REQUIRE(generate(s, 2, out) == PI_OK);
            pi_session_free(s);
        });
        CHECK(report.find("PI_CPU_PROFILE") == std::string::npos);
    }
}
