// pi_plan_placement and the pi_placement_* calls: argument checks, the buffer rule, versioned structs, and plans of
// tiny model files with pinned costs (budgets, monotone step time, profiles against the file's frequencies).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "gguf/gguf_writer.h"
#include "powerinfer/powerinfer.h"
#include "tiny_model_builder.h"

using Catch::Matchers::Contains;
using pi::test::TinyModelSpec;

namespace {

constexpr uint32_t kFf = 64;

// Costs pinned (nothing measured, no cache read) and scaled to the tiny model's bytes so that the GPU is much
// faster per byte, the link has a price, and every kind of layer can win somewhere.
pi_model_params pinned_params(uint64_t budget) {
    pi_model_params p;
    pi_model_params_init(&p);
    p.vram_budget = budget;
    p.neuron_group = 8;
    p.plan_n_ctx = 64;
    p.cost_gpu_bandwidth_gbps = 2.0;
    p.cost_cpu_bandwidth_gbps = 0.05;
    p.cost_sync_us = 5;
    p.cost_launch_us = 4;
    p.cost_transfer_latency_us = 10;
    p.cost_transfer_gbps = 0.1;
    return p;
}

std::vector<std::vector<float>> hot_set_freq(const std::set<uint32_t> &hot, size_t n_layer) {
    std::vector<float> f(kFf, 0.01f);
    for (uint32_t i : hot) f[i] = 0.9f;
    return std::vector<std::vector<float>>(n_layer, f);
}

void add_freq(pi::gguf::Writer &w, const std::vector<std::vector<float>> &freq) {
    for (size_t l = 0; l < freq.size(); ++l) {
        w.add_tensor("blk." + std::to_string(l) + ".ffn_act_freq", pi::gguf::TensorType::F32, {freq[l].size()},
                     freq[l].data(), freq[l].size() * sizeof(float));
    }
}

std::string sparse_model(const std::string &name, const std::vector<std::vector<float>> &freq = {}) {
    TinyModelSpec spec;
    spec.predictors = true;
    spec.n_layer = 3;
    pi::gguf::Writer w = pi::test::build_tiny_model(spec);
    add_freq(w, freq);
    const std::string path = pi::test::write_tiny_model(spec, name);
    w.write_file(path);
    return path;
}

std::string profile_file(const std::vector<std::vector<float>> &freq) {
    pi::gguf::Writer w;
    w.add_string("general.architecture", "llama");
    w.add("powerinfer.profile.tokens", pi::gguf::make_uint(pi::gguf::ValueType::UINT64, 1000));
    add_freq(w, freq);
    const std::string path = pi::test::write_tiny_model(TinyModelSpec{}, "profile");
    w.write_file(path);
    return path;
}

pi_placement *plan_ok(const std::string &path, const pi_model_params &p) {
    pi_placement *pl = nullptr;
    const pi_status st = pi_plan_placement(path.c_str(), &p, &pl);
    INFO(pi_last_error());
    REQUIRE(st == PI_OK);
    REQUIRE(pl != nullptr);
    return pl;
}

pi_placement_info info_of(const pi_placement *pl) {
    pi_placement_info info;
    pi_placement_info_init(&info);
    REQUIRE(pi_placement_get_info(pl, &info) == PI_OK);
    return info;
}

pi_placement_layer_info layer_of(const pi_placement *pl, uint32_t l) {
    pi_placement_layer_info li;
    pi_placement_layer_info_init(&li);
    REQUIRE(pi_placement_get_layer(pl, l, &li) == PI_OK);
    return li;
}

std::vector<uint32_t> gpu_neurons(const pi_placement *pl, uint32_t l) {
    size_t n = 0;
    const pi_status st = pi_placement_gpu_neurons(pl, l, nullptr, 0, &n);
    REQUIRE((st == PI_OK || st == PI_ERR_BUFFER_TOO_SMALL));
    std::vector<uint32_t> out(n);
    REQUIRE(pi_placement_gpu_neurons(pl, l, out.data(), out.size(), &n) == PI_OK);
    REQUIRE(n == out.size());
    return out;
}

// A plan's status and message, the out-param checked untouched on failure.
std::pair<pi_status, std::string> try_plan(const char *path, const pi_model_params *p) {
    pi_placement *pl = reinterpret_cast<pi_placement *>(0x1);
    const pi_status st = pi_plan_placement(path, p, &pl);
    const std::string message = pi_last_error();
    if (st == PI_OK) {
        pi_placement_free(pl);
    } else {
        CHECK(pl == reinterpret_cast<pi_placement *>(0x1));
    }
    return {st, message};
}

}  // namespace

TEST_CASE("placement API: defaults of the planner's model params", "[api][placement]") {
    pi_model_params p;
    std::memset(&p, 0xAB, sizeof p);
    pi_model_params_init(&p);
    CHECK(p.struct_size == sizeof p);
    CHECK(p.plan_n_ctx == 2048);
    CHECK(p.plan_n_sessions == 1);
    CHECK(p.neuron_group == 32);
    CHECK(p.profile_path == nullptr);
    CHECK(p.cost_gpu_bandwidth_gbps == 0.0);
    CHECK(p.cost_cpu_bandwidth_gbps == 0.0);
    CHECK(p.cost_sync_us == 0.0);
    CHECK(p.cost_launch_us == 0.0);
    CHECK(p.cost_transfer_latency_us == 0.0);
    CHECK(p.cost_transfer_gbps == 0.0);
}

TEST_CASE("placement API: NULLs and bad arguments", "[api][placement]") {
    const std::string path = sparse_model("args");
    const pi_model_params good = pinned_params(1 << 20);
    pi_placement *pl = nullptr;

    CHECK(pi_plan_placement(nullptr, &good, &pl) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(pi_last_error(), Contains("pi_plan_placement") && Contains("path is NULL"));
    CHECK(pi_plan_placement(path.c_str(), &good, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(pi_last_error(), Contains("out is NULL"));
    CHECK(try_plan("", &good).first == PI_ERR_INVALID_ARGUMENT);
    CHECK(try_plan("/nonexistent/model.gguf", &good).first == PI_ERR_IO);

    struct Bad {
        const char *field;
        void (*set)(pi_model_params &);
    };
    const Bad bad[] = {
        {"plan_n_ctx", [](pi_model_params &p) { p.plan_n_ctx = 0; }},
        {"plan_n_ctx", [](pi_model_params &p) { p.plan_n_ctx = (1u << 24) + 1; }},
        {"plan_n_sessions", [](pi_model_params &p) { p.plan_n_sessions = 0; }},
        {"neuron_group", [](pi_model_params &p) { p.neuron_group = 0; }},
        {"neuron_group", [](pi_model_params &p) { p.neuron_group = 65537; }},
        {"cost_gpu_bandwidth_gbps", [](pi_model_params &p) { p.cost_gpu_bandwidth_gbps = -1; }},
        {"cost_cpu_bandwidth_gbps", [](pi_model_params &p) { p.cost_cpu_bandwidth_gbps = std::nan(""); }},
        {"cost_sync_us", [](pi_model_params &p) { p.cost_sync_us = -0.5; }},
        {"cost_launch_us", [](pi_model_params &p) { p.cost_launch_us = std::numeric_limits<double>::infinity(); }},
        {"cost_transfer_latency_us", [](pi_model_params &p) { p.cost_transfer_latency_us = std::nan(""); }},
        {"cost_transfer_gbps", [](pi_model_params &p) { p.cost_transfer_gbps = -3; }},
        {"n_threads", [](pi_model_params &p) { p.n_threads = -2; }},
        {"profile_path", [](pi_model_params &p) { p.profile_path = ""; }},
        {"struct_size", [](pi_model_params &p) { p.struct_size = 8; }},
    };
    for (const Bad &b : bad) {
        INFO(b.field);
        pi_model_params p = good;
        b.set(p);
        const auto [st, message] = try_plan(path.c_str(), &p);
        CHECK(st == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(message, Contains("pi_plan_placement") && Contains(b.field));
        // pi_model_load checks the same fields the same way.
        if (std::string(b.field) != "profile_path" && std::string(b.field) != "struct_size" &&
            std::string(b.field) != "n_threads") {
            pi_model *model = reinterpret_cast<pi_model *>(0x1);
            CHECK(pi_model_load(path.c_str(), &p, &model) == PI_ERR_INVALID_ARGUMENT);
            CHECK_THAT(pi_last_error(), Contains("pi_model_load") && Contains(b.field));
            CHECK(model == reinterpret_cast<pi_model *>(0x1));
        }
    }
    // A struct from a client that knows only the first published fields: the planner's fields take their defaults,
    // so the CPU bandwidth is not pinned. It comes from the per-host cache, which we point at a file of our own
    // (so nothing is measured and the user's cache is not touched).
    {
        char dir[] = "/tmp/pi-placement-cache-XXXXXX";
        REQUIRE(mkdtemp(dir) != nullptr);
        char host[256] = {};
        REQUIRE(gethostname(host, sizeof host - 1) == 0);
        const std::string cache_dir = std::string(dir) + "/powerinfer";
        const std::string cache_file = cache_dir + "/cost-" + host + ".txt";
        REQUIRE(system(("mkdir -p " + cache_dir).c_str()) == 0);
        {
            FILE *f = std::fopen(cache_file.c_str(), "w");
            REQUIRE(f != nullptr);
            std::fputs("cpu_bandwidth_gbps.t1 7.25\n", f);
            std::fclose(f);
        }
        const char *old_xdg = std::getenv("XDG_CACHE_HOME");
        const std::string saved = old_xdg ? old_xdg : "";
        setenv("XDG_CACHE_HOME", dir, 1);
        pi_model_params old = good;
        old.struct_size = 56;  // ends before sparse_threshold
        old.n_threads = 1;
        old.plan_n_ctx = 0;    // beyond struct_size: not read
        pi_placement *from_old = nullptr;
        const pi_status st = pi_plan_placement(path.c_str(), &old, &from_old);
        if (old_xdg) setenv("XDG_CACHE_HOME", saved.c_str(), 1);
        else unsetenv("XDG_CACHE_HOME");
        REQUIRE(st == PI_OK);
        const pi_placement_info info = info_of(from_old);
        CHECK(info.plan_n_ctx == 2048);
        CHECK(info.neuron_group == 32);
        CHECK(info.cpu_bandwidth_source == PI_COST_CACHED);
        CHECK(info.cpu_bandwidth_gbps == Approx(7.25));
        CHECK(info.gpu_cost_source == PI_COST_DEFAULT);
        pi_placement_free(from_old);
        REQUIRE(system(("rm -rf " + std::string(dir)).c_str()) == 0);
    }

    pl = plan_ok(path, good);
    pi_placement_info info;
    pi_placement_info_init(&info);
    CHECK(pi_placement_get_info(nullptr, &info) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(pi_last_error(), Contains("pi_placement_get_info") && Contains("placement is NULL"));
    CHECK(pi_placement_get_info(pl, nullptr) == PI_ERR_INVALID_ARGUMENT);
    info.struct_size = 4;
    CHECK(pi_placement_get_info(pl, &info) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(pi_last_error(), Contains("struct_size"));

    pi_placement_layer_info li;
    pi_placement_layer_info_init(&li);
    CHECK(pi_placement_get_layer(nullptr, 0, &li) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_placement_get_layer(pl, 0, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_placement_get_layer(pl, 3, &li) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(pi_last_error(), Contains("layer 3 is out of range") && Contains("3 layers"));
    li.struct_size = 0;
    CHECK(pi_placement_get_layer(pl, 0, &li) == PI_ERR_INVALID_ARGUMENT);

    size_t n = 77;
    uint32_t buf[4];
    CHECK(pi_placement_gpu_neurons(nullptr, 0, buf, 4, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_placement_gpu_neurons(pl, 0, buf, 4, nullptr) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_placement_gpu_neurons(pl, 0, nullptr, 4, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(pi_placement_gpu_neurons(pl, 9, buf, 4, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(n == 77);  // untouched on failure

    pi_placement_free(pl);
    pi_placement_free(nullptr);  // no-op
    pi_placement_info_init(nullptr);
    pi_placement_layer_info_init(nullptr);
}

TEST_CASE("placement API: the buffer rule of pi_placement_gpu_neurons", "[api][placement]") {
    pi_model_params p = pinned_params(UINT64_MAX - 1);  // everything fits
    pi_placement *pl = plan_ok(sparse_model("buffer"), p);
    size_t n = 0;
    CHECK(pi_placement_gpu_neurons(pl, 1, nullptr, 0, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == kFf);
    std::vector<uint32_t> out(kFf + 2, 0xFFFFFFFFu);
    n = 0;
    CHECK(pi_placement_gpu_neurons(pl, 1, out.data(), kFf - 1, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == kFf);
    CHECK(out[0] == 0xFFFFFFFFu);  // nothing written
    CHECK(pi_placement_gpu_neurons(pl, 1, out.data(), out.size(), &n) == PI_OK);
    CHECK(n == kFf);
    for (uint32_t i = 0; i < kFf; ++i) CHECK(out[i] == i);  // ascending: all of them
    CHECK(out[kFf] == 0xFFFFFFFFu);
    CHECK(std::string(pi_last_error()).empty());
    pi_placement_free(pl);

    // A layer with no GPU neurons: size 0 fits a NULL buffer.
    pl = plan_ok(sparse_model("buffer0"), pinned_params(0));
    n = 5;
    CHECK(pi_placement_gpu_neurons(pl, 0, nullptr, 0, &n) == PI_OK);
    CHECK(n == 0);
    pi_placement_free(pl);
}

TEST_CASE("placement API: budget 0 puts nothing on the GPU, a huge one everything", "[api][placement]") {
    const std::string path = sparse_model("extremes");
    pi_placement *pl = plan_ok(path, pinned_params(0));
    pi_placement_info info = info_of(pl);
    CHECK(info.n_layer == 3);
    CHECK(info.budget_bytes == 0);
    CHECK(info.gpu_bytes == 0);
    CHECK(info.kv_bytes == 0);
    CHECK(info.output_on_gpu == 0);
    CHECK(info.n_gpu_attention == 0);
    CHECK(info.n_gpu_neurons == 0);
    CHECK(info.n_neurons == 3 * kFf);
    CHECK(info.step_seconds > 0);
    CHECK(info.tokens_per_second == Approx(1.0 / info.step_seconds));
    for (uint32_t l = 0; l < 3; ++l) {
        const pi_placement_layer_info li = layer_of(pl, l);
        CHECK(li.attention_on_gpu == 0);
        CHECK(li.n_gpu_neurons == 0);
        CHECK(li.n_neurons == kFf);
        CHECK(li.gpu_bytes == 0);
        CHECK(li.t_gpu == 0);
        CHECK(li.t_cpu > 0);
        CHECK(li.freq_source == PI_FREQ_PRIOR);
        CHECK(li.active_neurons == Approx(0.1 * kFf));
        CHECK(li.gpu_active_neurons == 0);
    }
    const double cpu_step = info.step_seconds;
    pi_placement_free(pl);

    pl = plan_ok(path, pinned_params(UINT64_MAX - 1));
    info = info_of(pl);
    CHECK(info.output_on_gpu == 1);
    CHECK(info.n_gpu_attention == 3);
    CHECK(info.n_gpu_neurons == 3 * kFf);
    CHECK(info.gpu_bytes > 0);
    CHECK(info.gpu_bytes >= info.scratch_bytes + info.kv_bytes);
    CHECK(info.kv_bytes == 3 * 2 * 16 * 2 * 64);  // 3 layers x K and V x kv_dim 16 x F16 x 64 tokens (256-aligned)
    CHECK(info.plan_n_ctx == 64);
    CHECK(info.plan_n_sessions == 1);
    CHECK(info.neuron_group == 8);
    CHECK(info.step_seconds < cpu_step);
    uint64_t layers_bytes = 0;
    for (uint32_t l = 0; l < 3; ++l) {
        const pi_placement_layer_info li = layer_of(pl, l);
        CHECK(li.attention_on_gpu == 1);
        CHECK(li.n_gpu_neurons == kFf);
        CHECK(li.t_cpu == 0);
        CHECK(li.gpu_active_neurons == Approx(li.active_neurons));
        layers_bytes += li.gpu_bytes;
    }
    CHECK(layers_bytes + info.scratch_bytes < info.gpu_bytes);  // plus the output head
    // The cost parameters used are the pinned ones, and say so.
    CHECK(info.gpu_bandwidth_gbps == Approx(2.0));
    CHECK(info.cpu_bandwidth_gbps == Approx(0.05));
    CHECK(info.sync_us == Approx(5));
    CHECK(info.launch_us == Approx(4));
    CHECK(info.transfer_latency_us == Approx(10));
    CHECK(info.transfer_gbps == Approx(0.1));
    CHECK(info.cpu_bandwidth_source == PI_COST_PINNED);
    CHECK(info.gpu_cost_source == PI_COST_PINNED);
    CHECK(info.memory_unit_bytes > 0);
    pi_placement_free(pl);

    // backend "cpu" means CPU only, whatever the budget; so does the automatic budget without a GPU backend.
    pi_model_params cpu = pinned_params(UINT64_MAX - 1);
    cpu.backend = "cpu";
    pl = plan_ok(path, cpu);
    CHECK(info_of(pl).gpu_bytes == 0);
    pi_placement_free(pl);
    pl = plan_ok(path, pinned_params(PI_VRAM_BUDGET_AUTO));
    CHECK(info_of(pl).gpu_bytes == 0);
    pi_placement_free(pl);
}

TEST_CASE("placement API: more budget never predicts a slower step, and the budget holds", "[api][placement]") {
    const std::string path = sparse_model("monotone", hot_set_freq({3, 9, 17, 40, 41, 42, 60}, 3));
    double previous = std::numeric_limits<double>::infinity();
    int distinct = 0;
    uint64_t total = 0;
    {
        pi_placement *all = plan_ok(path, pinned_params(UINT64_MAX - 1));
        total = info_of(all).gpu_bytes;
        pi_placement_free(all);
    }
    for (int i = 0; i <= 60; ++i) {
        const uint64_t budget = total * uint64_t(i) / 50;
        pi_placement *pl = plan_ok(path, pinned_params(budget));
        const pi_placement_info info = info_of(pl);
        CHECK(info.gpu_bytes <= budget);
        CHECK(info.budget_bytes == budget);
        CHECK(info.step_seconds <= previous * (1 + 1e-12));
        if (info.step_seconds < previous * (1 - 1e-9)) ++distinct;
        previous = info.step_seconds;
        uint64_t sum = 0;
        for (uint32_t l = 0; l < info.n_layer; ++l) sum += layer_of(pl, l).gpu_bytes;
        CHECK(sum <= info.gpu_bytes);
        pi_placement_free(pl);
    }
    CHECK(distinct >= 5);  // the sweep saw several different plans
}

TEST_CASE("placement API: a profile picks the profiled hot neurons; the file's frequencies win", "[api][placement]") {
    const std::set<uint32_t> profile_hot = {5, 6, 7, 20, 21, 22, 50, 63};
    const std::set<uint32_t> file_hot = {0, 1, 30, 31, 32, 33, 34, 35};
    const std::string profile = profile_file(hot_set_freq(profile_hot, 3));

    // A budget where layers split: some neurons on the GPU, not all. Find one by sweeping.
    auto split_budget = [&](const std::string &path, pi_model_params p) -> uint64_t {
        for (uint64_t budget = 20000; budget < 4000000; budget += 20000) {
            p.vram_budget = budget;
            pi_placement *pl = plan_ok(path, p);
            const pi_placement_info info = info_of(pl);
            pi_placement_free(pl);
            if (info.n_gpu_neurons > 0 && info.n_gpu_neurons < info.n_neurons) return budget;
        }
        return 0;
    };

    const std::string plain = sparse_model("for-profile");
    pi_model_params p = pinned_params(0);
    p.profile_path = profile.c_str();
    const uint64_t budget = split_budget(plain, p);
    REQUIRE(budget > 0);
    p.vram_budget = budget;

    pi_placement *without = plan_ok(plain, pinned_params(budget));
    pi_placement *with = plan_ok(plain, p);
    bool any_split = false;
    for (uint32_t l = 0; l < 3; ++l) {
        CHECK(layer_of(with, l).freq_source == PI_FREQ_PROFILE);
        CHECK(layer_of(without, l).freq_source == PI_FREQ_PRIOR);
        const std::vector<uint32_t> chosen = gpu_neurons(with, l);
        if (chosen.empty() || chosen.size() == kFf) continue;
        any_split = true;
        // The hottest profiled neurons go first: with up to 8 on the GPU all are profiled-hot, with more every
        // profiled-hot one is among them.
        if (chosen.size() <= profile_hot.size()) {
            for (uint32_t i : chosen) CHECK(profile_hot.count(i) == 1);
        } else {
            for (uint32_t i : profile_hot) CHECK(std::count(chosen.begin(), chosen.end(), i) == 1);
        }
        // The prior (uniform) would have taken the lowest indices instead.
        CHECK(chosen != gpu_neurons(without, l));
    }
    CHECK(any_split);
    pi_placement_free(without);
    pi_placement_free(with);

    // The same profile against a file that carries its own frequencies: the file's hot set is chosen.
    const std::string with_freq = sparse_model("file-freq", hot_set_freq(file_hot, 3));
    pi_placement *file_plan = plan_ok(with_freq, p);
    bool any_file_split = false;
    for (uint32_t l = 0; l < 3; ++l) {
        CHECK(layer_of(file_plan, l).freq_source == PI_FREQ_FILE);
        const std::vector<uint32_t> chosen = gpu_neurons(file_plan, l);
        if (chosen.empty() || chosen.size() == kFf) continue;
        any_file_split = true;
        if (chosen.size() <= file_hot.size()) {
            for (uint32_t i : chosen) CHECK(file_hot.count(i) == 1);
        } else {
            for (uint32_t i : file_hot) CHECK(std::count(chosen.begin(), chosen.end(), i) == 1);
        }
        CHECK(layer_of(file_plan, l).gpu_active_neurons > 0.89 * std::min<size_t>(chosen.size(), file_hot.size()));
    }
    CHECK(any_file_split);
    pi_placement_free(file_plan);
}

TEST_CASE("placement API: a dense model has frequency 1 everywhere", "[api][placement]") {
    TinyModelSpec spec;  // llama without predictors: SiLU, dense
    const std::string path = pi::test::write_tiny_model(spec, "dense-plan");
    pi_placement *pl = plan_ok(path, pinned_params(300000));
    for (uint32_t l = 0; l < 2; ++l) {
        const pi_placement_layer_info li = layer_of(pl, l);
        CHECK(li.freq_source == PI_FREQ_DENSE);
        CHECK(li.active_neurons == Approx(kFf));
        CHECK(li.gpu_active_neurons == Approx(li.n_gpu_neurons));
    }
    CHECK(info_of(pl).gpu_bytes <= 300000);
    pi_placement_free(pl);
}

TEST_CASE("placement API: versioned structs: an older, smaller struct gets only its prefix", "[api][placement]") {
    pi_placement *pl = plan_ok(sparse_model("versioned"), pinned_params(UINT64_MAX - 1));
    // A caller whose struct is larger (a newer header): the tail is left alone.
    struct Larger {
        pi_placement_info info;
        uint64_t extra;
    } larger;
    pi_placement_info_init(&larger.info);
    larger.info.struct_size = sizeof larger;
    larger.extra = 0x1234;
    REQUIRE(pi_placement_get_info(pl, &larger.info) == PI_OK);
    CHECK(larger.info.struct_size == sizeof larger);
    CHECK(larger.extra == 0x1234);
    CHECK(larger.info.n_layer == 3);

    pi_placement_layer_info li;
    pi_placement_layer_info_init(&li);
    CHECK(li.struct_size == sizeof li);
    REQUIRE(pi_placement_get_layer(pl, 2, &li) == PI_OK);
    CHECK(li.n_neurons == kFf);
    pi_placement_free(pl);
}
