// The planner's problem as built from a model file: byte sizes against shapes computed here from the spec (not
// from the code under test), the frequency sources in their order, and the budget promise from file to device.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "backends/sim/sim_device.h"
#include "common/error.h"
#include "gguf/gguf_writer.h"
#include "planner/device_reservation.h"
#include "planner/model_problem.h"
#include "planner/planner.h"
#include "tiny_model_builder.h"

using namespace pi::planner;
using Catch::Matchers::Contains;
using pi::test::TinyModelSpec;

namespace {

uint64_t up256(uint64_t x) { return (x + 255) / 256 * 256; }

std::string write_model(const TinyModelSpec &spec, const std::string &name,
                        const std::vector<std::vector<float>> &act_freq = {}) {
    pi::gguf::Writer w = pi::test::build_tiny_model(spec);
    for (size_t l = 0; l < act_freq.size(); ++l) {
        w.add_tensor("blk." + std::to_string(l) + ".ffn_act_freq", pi::gguf::TensorType::F32,
                     {act_freq[l].size()}, act_freq[l].data(), act_freq[l].size() * sizeof(float));
    }
    // Same temp directory as the other tiny models: write_tiny_model's path with our bytes.
    const std::string path = pi::test::write_tiny_model(spec, name);
    w.write_file(path);
    return path;
}

std::string write_profile(const std::vector<std::vector<float>> &freq) {
    pi::gguf::Writer w;
    w.add_string("general.architecture", "llama");
    w.add("powerinfer.profile.tokens", pi::gguf::make_uint(pi::gguf::ValueType::UINT64, 100));
    for (size_t l = 0; l < freq.size(); ++l) {
        w.add_tensor("blk." + std::to_string(l) + ".ffn_act_freq", pi::gguf::TensorType::F32, {freq[l].size()},
                     freq[l].data(), freq[l].size() * sizeof(float));
    }
    TinyModelSpec dummy;
    const std::string path = pi::test::write_tiny_model(dummy, "profile");
    w.write_file(path);
    return path;
}

}  // namespace

TEST_CASE("model problem: byte sizes of a llama file with predictors", "[planner][model]") {
    TinyModelSpec spec;  // llama, E 32, F 64, 4 heads, 2 KV heads, F32 everywhere
    spec.predictors = true;
    const uint64_t E = 32, F = 64, q = 32, kv = 16, W = 16, V = pi::test::tiny_vocab_tokens().size();
    ModelPlanOptions o;
    o.plan_n_ctx = 100;
    o.plan_n_sessions = 3;
    o.group_size = 8;
    o.budget_bytes = 12345;
    const ModelProblem mp = build_model_problem(write_model(spec, "sizes"), o);
    REQUIRE(mp.problem.layers.size() == 2);
    CHECK(mp.sparse);
    const uint64_t attention = (E * q + E * kv + E * kv + q * E + 2 * E) * 4;  // q, k, v, o, attn_norm, ffn_norm
    const uint64_t predictor = (E * W + W * F) * 4;
    const uint64_t kv_token = 2 * kv * 2;  // K and V, F16
    for (const LayerInput &in : mp.problem.layers) {
        CHECK(in.act_freq.size() == F);
        CHECK(in.neuron_bytes == 3 * E * 4);  // gate row, up row, down column
        CHECK(in.pred_bytes == predictor);
        CHECK(in.attn_bytes + in.pred_bytes == up256(attention + predictor) + 3 * 256);  // + one padding per matrix
        CHECK(in.kv_bytes == 3 * up256(kv_token * 100));
        CHECK(in.kv_read_bytes == kv_token * 100);
        CHECK(in.hidden_bytes == E * 4);
    }
    CHECK(mp.problem.output_bytes == up256(E * V * 4 + E * 4));
    CHECK(mp.problem.logits_bytes == V * 4);
    CHECK(mp.problem.budget_bytes == 12345);
    CHECK(mp.problem.group_size == 8);
    // The runtime's workspace for kScratchTokens tokens, exactly (so a 512-token prompt runs as one chunk): x, xn,
    // xn2, tmp (T x E each), q|k|v, attention output, gate, up, the partial sum, logits, counts (2 per layer), the
    // transfer block, the step word -- each region on a 64-float boundary -- then a slot table per layer and the
    // iota list (F int32 each).
    const uint64_t T = kScratchTokens, L = 2;
    const auto up64 = [](uint64_t f) { return (f + 63) / 64 * 64; };
    const uint64_t floats = 4 * up64(T * E) + up64(T * (q + 2 * kv)) + up64(T * q) + 2 * up64(T * F) + up64(E) +
                            up64(V) + up64(2 * L) + up64(4 + E + 2 * F) + up64(1);
    CHECK(mp.problem.scratch_bytes == up256(floats * 4) + up256(L * F * 4) + up256(F * 4));
}

TEST_CASE("model problem: falcon and opt layouts", "[planner][model]") {
    const uint64_t E = 32, V = pi::test::tiny_vocab_tokens().size();
    SECTION("falcon: fused QKV, LayerNorm with bias, no gate") {
        TinyModelSpec spec;
        spec.arch = "falcon";
        const ModelProblem mp = build_model_problem(write_model(spec, "falcon"), ModelPlanOptions{});
        const LayerInput &in = mp.problem.layers[0];
        CHECK(in.neuron_bytes == 2 * E * 4);  // up row + down column
        CHECK(in.attn_bytes == up256((E * (32 + 2 * 16) + 32 * E + 2 * E) * 4) + 2 * 256);
        CHECK_FALSE(mp.sparse);
    }
    SECTION("opt: biases, per-neuron up bias, output head tied to the embedding") {
        TinyModelSpec spec;
        spec.arch = "opt";
        spec.n_head_kv = 4;
        const ModelProblem mp = build_model_problem(write_model(spec, "opt"), ModelPlanOptions{});
        const LayerInput &in = mp.problem.layers[0];
        CHECK(in.neuron_bytes == 2 * E * 4 + 4);  // up row, down column, one up-bias value
        const uint64_t attention = (4 * E * E + 4 * E /* q k v o biases */ + 4 * E /* norms + biases */ + E) * 4;
        CHECK(in.attn_bytes == up256(attention) + 3 * 256);
        CHECK(mp.problem.output_bytes == up256(E * V * 4 + 2 * E * 4));  // the embedding table, norm and bias
    }
}

TEST_CASE("model problem: frequencies come from the file, then the profile, then the prior", "[planner][model]") {
    const uint32_t F = 64;
    std::vector<std::vector<float>> file_freq(2, std::vector<float>(F)), profile_freq(2, std::vector<float>(F));
    for (uint32_t i = 0; i < F; ++i) {
        file_freq[0][i] = float(i) / F;
        file_freq[1][i] = 0.5f;
        profile_freq[0][i] = 0.25f;
        profile_freq[1][i] = float(F - i) / F;
    }
    TinyModelSpec sparse;
    sparse.predictors = true;
    const std::string profile = write_profile(profile_freq);
    ModelPlanOptions o;

    SECTION("no profile anywhere: the prior") {
        const ModelProblem mp = build_model_problem(write_model(sparse, "prior"), o);
        for (size_t l = 0; l < 2; ++l) {
            CHECK(mp.freq_source[l] == FreqSource::prior);
            CHECK(mp.problem.layers[l].act_freq == std::vector<float>(F, kSparsePrior));
        }
    }
    SECTION("a profile file") {
        o.profile_path = profile;
        const ModelProblem mp = build_model_problem(write_model(sparse, "profiled"), o);
        CHECK(mp.freq_source[0] == FreqSource::profile);
        CHECK(mp.problem.layers[1].act_freq == profile_freq[1]);
    }
    SECTION("the file's tensors win over the profile") {
        o.profile_path = profile;
        const ModelProblem mp = build_model_problem(write_model(sparse, "withfreq", file_freq), o);
        CHECK(mp.freq_source[0] == FreqSource::file);
        CHECK(mp.problem.layers[0].act_freq == file_freq[0]);
        CHECK(mp.problem.layers[1].act_freq == file_freq[1]);
    }
    SECTION("a dense model runs every neuron, whatever the profile says") {
        o.profile_path = profile;
        TinyModelSpec dense;
        const ModelProblem mp = build_model_problem(write_model(dense, "dense", file_freq), o);
        CHECK_FALSE(mp.sparse);
        CHECK(mp.freq_source[1] == FreqSource::dense);
        CHECK(mp.problem.layers[1].act_freq == std::vector<float>(F, 1.0f));
        CHECK(mp.problem.layers[1].pred_bytes == 0);
    }
    SECTION("a frequency outside [0, 1] in the file is a format error naming the tensor") {
        for (float bad : {1.5f, -0.1f, std::nanf("")}) {
            std::vector<std::vector<float>> broken = file_freq;
            broken[1][7] = bad;
            try {
                build_model_problem(write_model(sparse, "badfreq", broken), o);
                FAIL("accepted " << bad);
            } catch (const pi::Error &e) {
                CHECK(e.status() == PI_ERR_FORMAT);
                CHECK_THAT(e.what(), Contains("blk.1.ffn_act_freq") && Contains("neuron 7"));
            }
        }
    }
    SECTION("a profile of the wrong shape or a missing one is an error") {
        o.profile_path = write_profile({std::vector<float>(F, 0.1f)});  // one layer only
        CHECK_THROWS_AS(build_model_problem(write_model(sparse, "short"), o), pi::Error);
        o.profile_path = "/nonexistent/profile.gguf";
        try {
            build_model_problem(write_model(sparse, "noprofile"), o);
            FAIL("a missing profile was accepted");
        } catch (const pi::Error &e) {
            CHECK(e.status() == PI_ERR_IO);
        }
    }
}

TEST_CASE("model problem: bad options are refused before the file is opened", "[planner][model]") {
    ModelPlanOptions o;
    o.plan_n_ctx = 0;
    try {
        build_model_problem("/nonexistent.gguf", o);
        FAIL("accepted plan_n_ctx 0");
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(e.what(), Contains("plan_n_ctx"));
    }
    o = ModelPlanOptions{};
    o.plan_n_sessions = 0;
    CHECK_THROWS_WITH(build_model_problem("/nonexistent.gguf", o), Contains("plan_n_sessions"));
    o = ModelPlanOptions{};
    o.group_size = 70000;
    CHECK_THROWS_WITH(build_model_problem("/nonexistent.gguf", o), Contains("neuron_group"));
}

TEST_CASE("model problem: from file to simulated device, the budget holds", "[planner][model][sim]") {
    TinyModelSpec spec;
    spec.predictors = true;
    spec.n_layer = 4;
    const std::string path = write_model(spec, "budget");
    CostParams costs;  // scaled to tiny sizes so that every kind of layer occurs
    costs.gpu_bandwidth = 2e9;
    costs.cpu_bandwidth = 5e7;
    for (uint64_t budget = 0; budget <= 4000000; budget += 40000) {
        ModelPlanOptions o;
        o.budget_bytes = budget;
        o.plan_n_ctx = 64;
        o.plan_n_sessions = 2;
        o.group_size = 8;
        const ModelProblem mp = build_model_problem(path, o);
        const Placement pl = plan(mp.problem, costs);
        pi::sim::Device device(budget);
        {
            DeviceReservation r(pl, mp.objects, device);
            auto a = r.reserve_session(64);
            auto b = r.reserve_session(10);
            r.release_session(a);
            r.reserve_session(64);
            r.release_session(b);
        }
        CHECK(device.n_refused() == 0);
        CHECK(device.peak() <= budget);
        CHECK(device.used() == 0);
    }
}
