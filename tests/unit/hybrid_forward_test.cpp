// The hybrid executor (runtime/hybrid_forward.cpp) on the test backend "cpu-device" (the CPU backend table used as
// the device): every placement shape — nothing on the device, split layers with a neuron count that is not a
// multiple of the group, attention on the device for some layers only, everything — must give the CPU executor's
// logits (within 1e-4 relative) and its greedy tokens, for sparse and dense sessions; budgets hold; sessions over the
// budget fail with PI_ERR_OUT_OF_MEMORY; cancel works.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/session.h"
#include "runtime/device_model.h"
#include "session_test_helpers.h"

using namespace pi::test;

namespace {

// Sets PI_TEST_PLAN for the duration of one load.
struct ForcedPlan {
    explicit ForcedPlan(const std::string &spec) {
        if (!spec.empty()) setenv("PI_TEST_PLAN", spec.c_str(), 1);
    }
    ~ForcedPlan() { unsetenv("PI_TEST_PLAN"); }
};

pi_model *load(const std::string &path, const char *backend, uint64_t budget, const std::string &plan = "") {
    ForcedPlan forced(plan);
    pi_model_params p;
    pi_model_params_init(&p);
    p.backend = backend;
    p.vram_budget = budget;
    p.n_threads = 2;
    pi_model *m = nullptr;
    const pi_status st = pi_model_load(path.c_str(), &p, &m);
    INFO("load " << backend << " plan '" << plan << "': " << pi_last_error());
    REQUIRE(st == PI_OK);
    return m;
}

struct Run {
    std::vector<float> logits;  // after the prompt
    std::vector<std::vector<float>> step_logits;
    std::vector<pi_token> tokens;
};

Run run(pi_model *m, int32_t sparse, int32_t kv_type, size_t n_prompt, size_t n_gen) {
    SessionSettings settings;
    settings.kv_type = kv_type;
    pi_session_params p = session_params(settings);
    p.sparse = sparse;
    p.n_threads = 2;
    pi_session *s = nullptr;
    INFO(pi_last_error());
    REQUIRE(pi_session_create(m, &p, &s) == PI_OK);
    SessionPtr session(s, pi_session_free);
    Run r;
    const std::vector<pi_token> prompt = prompt_tokens(n_prompt, 7);
    REQUIRE(pi_session_eval(s, prompt.data(), prompt.size()) == PI_OK);
    r.logits = logits_of(s);
    for (size_t i = 0; i < n_gen; ++i) {
        pi_token t = -1;
        REQUIRE(pi_session_step(s, &t) == PI_OK);
        r.tokens.push_back(t);
        r.step_logits.push_back(logits_of(s));
    }
    return r;
}

// max |a - b| / max |b|: the relative error of a logits vector.
double rel_error(const std::vector<float> &a, const std::vector<float> &b) {
    REQUIRE(a.size() == b.size());
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
        scale = std::max(scale, std::fabs(double(b[i])));
    }
    return diff / std::max(scale, 1e-30);
}

void check_same(const Run &hybrid, const Run &cpu) {
    CHECK(rel_error(hybrid.logits, cpu.logits) < 1e-4);
    CHECK(hybrid.tokens == cpu.tokens);
    for (size_t i = 0; i < std::min(hybrid.step_logits.size(), cpu.step_logits.size()); ++i) {
        INFO("step " << i);
        CHECK(rel_error(hybrid.step_logits[i], cpu.step_logits[i]) < 1e-4);
    }
}

TinyModelSpec sparse_spec(const std::string &arch = "llama") {
    TinyModelSpec spec;
    spec.arch = arch;
    spec.predictors = true;
    spec.n_ff = 100;  // groups of 32: 3 whole groups and 4 neurons
    spec.n_layer = 3;
    return spec;
}

uint64_t gpu_bytes(pi_model *m) {
    pi_model_info info;
    pi_model_info_init(&info);
    REQUIRE(pi_model_get_info(m, &info) == PI_OK);
    return info.gpu_bytes;
}

}  // namespace

TEST_CASE("hybrid: every placement shape matches the CPU executor", "[hybrid]") {
    const std::string arch = GENERATE(std::string("llama"), std::string("falcon"), std::string("opt"),
                                      std::string("bamboo"));
    const std::string path = write_tiny_model(sparse_spec(arch), "hybrid_" + arch);
    pi_model *cpu = load(path, "cpu", 0);
    const int32_t kv = GENERATE(int32_t(PI_KV_F16), int32_t(PI_KV_F32));
    const Run cpu_sparse = run(cpu, PI_SPARSE_ON, kv, 6, 12);
    const Run cpu_dense = run(cpu, PI_SPARSE_OFF, kv, 6, 12);
    pi_model_free(cpu);

    const std::vector<std::string> plans = {
        "cpu,cpu,cpu",             // the hybrid executor with nothing on the device
        "split:37,attn,split:99",  // splits that are not a multiple of the group, one with no hot rows
        "gpu,cpu,split:5",         // attention on the device for some layers only, x moving both ways
        "cpu,gpu,gpu,out",         // the output head on the device after device layers
        "gpu,gpu,gpu,out",         // everything
    };
    // The CPU's share of split and CPU layers (cold neurons, whole FFNs) from the file's rows and from bundled rows
    // (PI_FFN_BUNDLE=1; float files are not bundled by default).
    for (const char *bundles : {"0", "1"}) {
        struct BundleSetting {  // unset again however the iteration ends
            explicit BundleSetting(const char *v) { setenv("PI_FFN_BUNDLE", v, 1); }
            ~BundleSetting() { unsetenv("PI_FFN_BUNDLE"); }
        } setting(bundles);
        for (const std::string &plan : plans) {
            INFO(arch << " kv " << kv << " plan " << plan << " bundles " << bundles);
            pi_model *m = load(path, "cpu-device", PI_VRAM_BUDGET_AUTO, plan);
            if (plan == "cpu,cpu,cpu") CHECK(gpu_bytes(m) == 0);
            else CHECK(gpu_bytes(m) > 0);
            check_same(run(m, PI_SPARSE_ON, kv, 6, 12), cpu_sparse);
            check_same(run(m, PI_SPARSE_OFF, kv, 6, 12), cpu_dense);
            pi_model_free(m);
        }
    }
}

// A dense file (ffn_down, no predictors): device layers take the dense decode products (matmul_glu for gate|up and
// the activation, matmul_add for down) and attention_decode, which sparse files do not reach.
TEST_CASE("hybrid: a dense model's device layers match the CPU executor", "[hybrid]") {
    const std::string arch = GENERATE(std::string("llama"), std::string("bamboo"));
    TinyModelSpec spec;
    spec.arch = arch;
    spec.n_layer = 3;
    spec.n_ff = 100;
    const std::string path = write_tiny_model(spec, "hybrid_dense_" + arch);
    pi_model *cpu = load(path, "cpu", 0);
    const int32_t kv = GENERATE(int32_t(PI_KV_F16), int32_t(PI_KV_F32));
    const Run cpu_dense = run(cpu, PI_SPARSE_OFF, kv, 6, 12);
    pi_model_free(cpu);
    for (const std::string plan : {"gpu,gpu,gpu,out", "cpu,gpu,gpu"}) {
        INFO(arch << " kv " << kv << " plan " << plan);
        pi_model *m = load(path, "cpu-device", PI_VRAM_BUDGET_AUTO, plan);
        CHECK(gpu_bytes(m) > 0);
        check_same(run(m, PI_SPARSE_OFF, kv, 6, 12), cpu_dense);
        pi_model_free(m);
    }
}

TEST_CASE("hybrid: the planner's placements at several budgets stay within the budget", "[hybrid]") {
    const std::string path = write_tiny_model(sparse_spec(), "hybrid_budgets");
    pi_model *cpu = load(path, "cpu", 0);
    const Run cpu_sparse = run(cpu, PI_SPARSE_ON, PI_KV_F16, 5, 8);
    pi_model_free(cpu);
    // Pinned costs that make the "device" worth using on a tiny model (a slow CPU, free launches), and a small
    // planned context, so that these budgets give: nothing, the output head only, attention on some layers, splits
    // by whole groups, everything (measured on this model; the checks below hold whatever the plan).
    std::vector<int> kinds_seen(3, 0);
    for (uint64_t budget : {0, 150000, 200000, 250000, 300000, 350000}) {
        INFO("budget " << budget);
        pi::LoadOptions o;
        o.backend = "cpu-device";
        o.vram_budget = budget;
        o.n_threads = 2;
        o.plan.plan_n_ctx = 64;
        o.plan.scratch_tokens = 32;  // the workspace these budgets were measured with (the default is 512)
        o.cost.cpu_bandwidth_gbps = 0.01;
        o.cost.gpu_bandwidth_gbps = 100;
        o.cost.launch_us = o.cost.sync_us = o.cost.transfer_latency_us = 0.001;
        o.cost.transfer_gbps = 100;
        auto model = pi::Model::load(path, o);
        const pi::planner::Placement &plan = model->device()->placement();
        CHECK(plan.gpu_bytes <= budget);
        CHECK(model->gpu_bytes() <= plan.gpu_bytes);
        for (const auto &l : plan.layers) kinds_seen[size_t(l.kind)] += 1;

        pi::SessionOptions so;
        so.n_threads = 2;
        so.sparse = pi::SparseMode::On;
        so.sampling.temperature = 0.0f;  // greedy, as the C API runs above
        pi::Session session(*model, so);
        CHECK(model->device()->device_bytes() <= budget);  // the session's KV cache included
        const std::vector<pi_token> prompt = prompt_tokens(5, 7);
        session.eval(prompt.data(), prompt.size());
        CHECK(rel_error(session.logits(), cpu_sparse.logits) < 1e-4);
        std::vector<pi_token> tokens;
        for (size_t i = 0; i < 8; ++i) tokens.push_back(session.step());
        CHECK(tokens == cpu_sparse.tokens);
    }
    CHECK(kinds_seen[size_t(pi::planner::LayerKind::cpu)] > 0);
    CHECK(kinds_seen[size_t(pi::planner::LayerKind::split)] > 0);
    CHECK(kinds_seen[size_t(pi::planner::LayerKind::gpu)] > 0);
}

TEST_CASE("hybrid: the device share and sessions never exceed the budget", "[hybrid]") {
    const std::string path = write_tiny_model(sparse_spec(), "hybrid_oom");
    // The plan's bytes, from the internal model (the budget the next load gets is exactly that).
    uint64_t planned = 0;
    {
        setenv("PI_TEST_PLAN", "gpu,gpu,gpu,out", 1);
        pi::LoadOptions o;
        o.backend = "cpu-device";
        o.n_threads = 1;
        auto model = pi::Model::load(path, o);
        unsetenv("PI_TEST_PLAN");
        planned = model->device()->placement().gpu_bytes;
        CHECK(model->gpu_bytes() <= planned);
    }
    REQUIRE(planned > 0);

    // A budget one byte short: the load is refused with a message, nothing crashes.
    {
        ForcedPlan forced("gpu,gpu,gpu,out");
        pi_model_params p;
        pi_model_params_init(&p);
        p.backend = "cpu-device";
        p.vram_budget = planned - 1;
        pi_model *m = nullptr;
        CHECK(pi_model_load(path.c_str(), &p, &m) == PI_ERR_OUT_OF_MEMORY);
        CHECK(m == nullptr);
        CHECK(std::string(pi_last_error()).find("budget") != std::string::npos);
    }

    pi_model *m = load(path, "cpu-device", planned, "gpu,gpu,gpu,out");
    // The reserved session fits; one longer than the reservation (plan_n_ctx 2048) does not.
    SessionSettings small;
    small.n_ctx = 64;
    SessionPtr first = make_session(m, small);
    pi_session_params big = session_params(small);
    big.n_ctx = 4096;
    pi_session *s = nullptr;
    CHECK(pi_session_create(m, &big, &s) == PI_ERR_OUT_OF_MEMORY);
    CHECK(s == nullptr);
    CHECK(std::string(pi_last_error()).find("KV") != std::string::npos);
    // Freeing the first session gives its slot back: a new one fits.
    first.reset();
    SessionPtr again = make_session(m, small);
    again.reset();  // sessions go before their model
    pi_model_free(m);
}

TEST_CASE("hybrid: a forced plan that does not parse is an invalid argument", "[hybrid]") {
    const std::string path = write_tiny_model(sparse_spec(), "hybrid_badplan");
    for (const char *bad : {"gpu,gpu", "gpu,gpu,gpu,gpu", "split:101,cpu,cpu", "split:x,cpu,cpu", "fast,cpu,cpu"}) {
        ForcedPlan forced(bad);
        pi_model_params p;
        pi_model_params_init(&p);
        p.backend = "cpu-device";
        pi_model *m = nullptr;
        INFO(bad);
        CHECK(pi_model_load(path.c_str(), &p, &m) == PI_ERR_INVALID_ARGUMENT);
        CHECK(m == nullptr);
    }
}

TEST_CASE("hybrid: state save and restore carry the device layers' KV rows", "[hybrid]") {
    const std::string path = write_tiny_model(sparse_spec(), "hybrid_state");
    pi_model *m = load(path, "cpu-device", PI_VRAM_BUDGET_AUTO, "split:40,cpu,gpu,out");
    SessionPtr a = make_session(m);
    const std::vector<pi_token> prompt = prompt_tokens(7, 3);
    REQUIRE(pi_session_eval(a.get(), prompt.data(), prompt.size()) == PI_OK);
    const std::vector<uint8_t> state = save_state(a.get());
    std::vector<pi_token> from_a;
    REQUIRE(generate(a.get(), 6, from_a) == PI_OK);

    SessionPtr b = make_session(m);
    REQUIRE(pi_session_state_load(b.get(), state.data(), state.size()) == PI_OK);
    std::vector<pi_token> from_b;
    REQUIRE(generate(b.get(), 6, from_b) == PI_OK);
    CHECK(from_a == from_b);
    a.reset();
    b.reset();
    pi_model_free(m);
}

TEST_CASE("hybrid: cancel stops a run and leaves the session usable", "[hybrid]") {
    TinyModelSpec spec = slow_model_spec();
    spec.predictors = true;
    const std::string path = write_tiny_model(spec, "hybrid_cancel");
    pi_model *m = load(path, "cpu-device", PI_VRAM_BUDGET_AUTO, "gpu,split:100,cpu,attn,gpu,split:300,cpu,gpu");
    SessionSettings settings;
    settings.n_ctx = 1024;
    settings.n_batch = 4;
    SessionPtr s = make_session(m, settings);
    const std::vector<pi_token> prompt = prompt_tokens(512, 1);
    std::atomic<bool> done{false};
    pi_status status = PI_OK;
    std::thread eval([&] {
        status = pi_session_eval(s.get(), prompt.data(), prompt.size());
        done = true;
    });
    while (!done) {
        pi_session_cancel(s.get());
        std::this_thread::yield();
    }
    eval.join();
    CHECK(status == PI_ERR_CANCELLED);
    CHECK(pi_session_n_past(s.get()) == 0);
    // Still usable: a short prompt runs.
    REQUIRE(pi_session_eval(s.get(), prompt.data(), 3) == PI_OK);
    s.reset();
    pi_model_free(m);
}
