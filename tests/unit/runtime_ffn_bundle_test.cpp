// FFN bundles (runtime/ffn_bundle.h): the bundled views hold the source rows byte for byte at their stride, on a
// 2 MiB boundary; ineligible layers are refused; releasing pages touches only read-only file mappings (anonymous
// memory keeps its data) and a released file range still reads the same; a model's bundles equal its file rows;
// and sparse sessions give the same bits with bundles on and off (PI_FFN_BUNDLE=0).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/error.h"
#include "model/model.h"
#include "powerinfer/powerinfer.h"
#include "runtime/ffn_bundle.h"
#include "runtime/host_layers.h"
#include "session_test_helpers.h"

using namespace pi;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (uint8_t &b : v) b = static_cast<uint8_t>(rng());
    return v;
}

// A matrix over caller bytes, rows of weight_row_bytes apart (a GGUF tensor's layout).
cpu::WeightMatrix matrix(const std::vector<uint8_t> &bytes, cpu::WeightType type, size_t rows, size_t cols) {
    return cpu::make_weight_matrix(bytes.data(), type, rows, cols);
}

bool same_rows(const cpu::WeightMatrix &a, const cpu::WeightMatrix &b) {
    if (a.n_rows != b.n_rows || a.n_cols != b.n_cols || a.type != b.type) return false;
    const size_t row = cpu::weight_row_bytes(a.type, a.n_cols);
    for (size_t r = 0; r < a.n_rows; ++r) {
        if (std::memcmp(a.row(r), b.row(r), row) != 0) return false;
    }
    return true;
}

struct EnvGuard {  // sets an environment variable (by default PI_FFN_BUNDLE) for a scope
    explicit EnvGuard(const char *value, const char *name = "PI_FFN_BUNDLE") : name_(name) { ::setenv(name, value, 1); }
    ~EnvGuard() { ::unsetenv(name_); }
    const char *name_;
};

const std::string kSparseModel = std::string(PI_MODELS_DIR) + "/relu-llama-q4_0.gguf";
const std::string kFloatSparseModel = std::string(PI_MODELS_DIR) + "/relu-llama-f16.gguf";

}  // namespace

TEST_CASE("an FFN bundle holds each neuron's gate, up and down_t rows side by side", "[ffn_bundle]") {
    // Q4_0 rows of 64 weights are 36 bytes (each part padded to 64); F16 rows of 64 are 128 bytes (no padding).
    for (auto [type, cols] : {std::pair{cpu::WeightType::Q4_0, size_t(64)}, std::pair{cpu::WeightType::F16, size_t(64)}}) {
        const size_t rows = 300, row = cpu::weight_row_bytes(type, cols);
        const auto g = random_bytes(rows * row, 1), u = random_bytes(rows * row, 2), d = random_bytes(rows * row, 3);
        const cpu::WeightMatrix gate = matrix(g, type, rows, cols), up = matrix(u, type, rows, cols),
                                down_t = matrix(d, type, rows, cols);
        REQUIRE(FfnBundle::eligible(gate, up, down_t));
        FfnBundle b(gate, up, down_t);
        const size_t part = (row + 63) / 64 * 64;
        CHECK(b.stride() == 3 * part);
        CHECK(reinterpret_cast<uintptr_t>(b.gate().data) % (size_t(2) << 20) == 0);
        CHECK(static_cast<const uint8_t *>(b.up().data) == static_cast<const uint8_t *>(b.gate().data) + part);
        CHECK(static_cast<const uint8_t *>(b.down_t().data) == static_cast<const uint8_t *>(b.gate().data) + 2 * part);
        CHECK(b.mapped_bytes() >= rows * b.stride());
        CHECK(same_rows(b.gate(), gate));
        CHECK(same_rows(b.up(), up));
        CHECK(same_rows(b.down_t(), down_t));
        CHECK_NOTHROW(cpu::check_weight_matrix(b.gate(), "test"));
    }
}

TEST_CASE("FFN bundles refuse matrices of different types or shapes", "[ffn_bundle]") {
    const auto bytes = random_bytes(64 * 256, 4);
    const cpu::WeightMatrix q4 = matrix(bytes, cpu::WeightType::Q4_0, 64, 64);
    const cpu::WeightMatrix f16 = matrix(bytes, cpu::WeightType::F16, 64, 64);
    const cpu::WeightMatrix fewer = matrix(bytes, cpu::WeightType::Q4_0, 63, 64);
    const cpu::WeightMatrix wider = matrix(bytes, cpu::WeightType::Q4_0, 64, 96);
    CHECK_FALSE(FfnBundle::eligible(q4, q4, f16));
    CHECK_FALSE(FfnBundle::eligible(q4, fewer, q4));
    CHECK_FALSE(FfnBundle::eligible(q4, q4, wider));
    CHECK_FALSE(FfnBundle::eligible(cpu::WeightMatrix{}, q4, q4));
    CHECK(FfnBundle::eligible(q4, q4, q4));
    try {
        FfnBundle b(q4, wider, q4);
        FAIL("no error");
    } catch (const Error &e) {
        CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
    }
}

TEST_CASE("release_file_pages drops only read-only file pages, which then read the same", "[ffn_bundle]") {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), bytes = 64 * page;
    const auto content = random_bytes(bytes, 5);

    // Anonymous memory: never released (MADV_DONTNEED would zero it).
    void *anon = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(anon != MAP_FAILED);
    std::memcpy(anon, content.data(), bytes);
    CHECK(release_file_pages(anon, bytes) == 0);
    CHECK(std::memcmp(anon, content.data(), bytes) == 0);
    ::munmap(anon, bytes);

    const std::string path = (std::filesystem::temp_directory_path() / "pi_ffn_bundle_release.bin").string();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char *>(content.data()), bytes);
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    // Read-only file mapping: the page-aligned interior of an unaligned range is released, the data re-faults.
    void *ro = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    REQUIRE(ro != MAP_FAILED);
    const auto *p = static_cast<const uint8_t *>(ro);
    CHECK(release_file_pages(p + 100, bytes - 200) == bytes - 2 * page);
    CHECK(release_file_pages(p + 100, page) == 0);  // no whole page inside
    CHECK(std::memcmp(ro, content.data(), bytes) == 0);
    ::munmap(ro, bytes);
    // A writable private mapping may hold modified copies: left alone.
    void *rw = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    REQUIRE(rw != MAP_FAILED);
    static_cast<uint8_t *>(rw)[page] ^= 0xff;
    CHECK(release_file_pages(rw, bytes) == 0);
    CHECK(static_cast<uint8_t *>(rw)[page] == static_cast<uint8_t>(content[page] ^ 0xff));
    ::munmap(rw, bytes);
    ::close(fd);
    std::filesystem::remove(path);
}

TEST_CASE("a model's FFN bundles equal its file rows, and sessions give the same bits with and without",
          "[ffn_bundle]") {
    // Written at build time by the pi_models target (tools/, Python gguf), which this test depends on.
    REQUIRE(std::filesystem::exists(kSparseModel));
    {
        LoadOptions options;
        options.backend = "cpu";
        auto model = Model::load(kSparseModel, options);
        const FfnBundles bundles(*model);
        REQUIRE(bundles.n_bundled() == model->hparams().n_layer);
        for (size_t l = 0; l < model->hparams().n_layer; ++l) {
            const LayerWeights &L = model->weights().layers[l];
            const FfnBundle *b = bundles.layer(l);
            REQUIRE(b);
            // The file rows are read back after their pages were released (re-faulted from the page cache).
            CHECK(same_rows(b->gate(), as_matrix(L.ffn_gate)));
            CHECK(same_rows(b->up(), as_matrix(L.ffn_up)));
            CHECK(same_rows(b->down_t(), as_matrix(L.ffn_down_t)));
        }
    }
    {
        // Built at load when wanted, kept by the model, handed to the CPU sessions' bindings.
        LoadOptions options;
        options.backend = "cpu";
        EnvGuard on("1");
        auto model = Model::load(kSparseModel, options);
        REQUIRE(model->ffn_bundles());
        CHECK(model->ffn_bundles()->n_bundled() == model->hparams().n_layer);
        const FfnBundle *first = model->ffn_bundles()->layer(0);
        REQUIRE(first);
        CHECK(bind_host_weights(*model, true).layers[0].ffn.gate.data == first->gate().data);
        CHECK(bind_host_weights(*model, true).layers[0].ffn.down_t.data == first->down_t().data);
        CHECK(bind_host_weights(*model, false).layers[0].ffn.gate.data == model->weights().layers[0].ffn_gate.data);
    }
    {
        LoadOptions options;
        options.backend = "cpu";
        EnvGuard off("0");
        CHECK_FALSE(Model::load(kSparseModel, options)->ffn_bundles());
    }
    {
        // The hybrid executor (the test backend "cpu-device" with a forced plan), an F16 file: no bundles by default
        // (float FFNs, as the CPU executor); with PI_FFN_BUNDLE=1 bundles for the layers whose FFN the CPU takes part
        // in (split, CPU-only) and none for a layer wholly on the device.
        REQUIRE(std::filesystem::exists(kFloatSparseModel));
        LoadOptions cpu_options;
        cpu_options.backend = "cpu";
        auto cpu_model = Model::load(kFloatSparseModel, cpu_options);
        CHECK_FALSE(cpu_model->ffn_bundles());
        const uint32_t n_layer = cpu_model->hparams().n_layer;
        REQUIRE(n_layer >= 3);
        std::string plan = "split:37,gpu";
        for (uint32_t l = 2; l < n_layer; ++l) plan += ",cpu";
        plan += ",out";
        LoadOptions options;
        options.backend = "cpu-device";
        EnvGuard forced(plan.c_str(), "PI_TEST_PLAN");
        CHECK_FALSE(Model::load(kFloatSparseModel, options)->ffn_bundles());
        {
            EnvGuard on("1");
            auto model = Model::load(kFloatSparseModel, options);
            REQUIRE(model->ffn_bundles());
            CHECK(model->ffn_bundles()->layer(0) != nullptr);
            CHECK(model->ffn_bundles()->layer(1) == nullptr);
            CHECK(model->ffn_bundles()->layer(2) != nullptr);
            CHECK(same_rows(model->ffn_bundles()->layer(2)->up(), as_matrix(model->weights().layers[2].ffn_up)));
        }
    }

    // Sparse decode and dense prefill over bundled and file views: the same kernels on the same bytes.
    auto generate = [](bool bundled, int32_t threads, std::vector<pi_token> &tokens) {
        EnvGuard env(bundled ? "1" : "0");
        test::ModelHandle model(kSparseModel);
        pi_session_params p;
        pi_session_params_init(&p);
        p.n_threads = threads;
        p.sparse = PI_SPARSE_ON;
        p.temperature = 0.0f;
        return test::run_session(model.model, p, {5, 70, 300, 41, 9, 123}, 8, tokens);
    };
    for (int32_t threads : {1, 2}) {
        std::vector<pi_token> ta, tb;
        const std::vector<float> a = generate(true, threads, ta), b = generate(false, threads, tb);
        CHECK(ta == tb);
        REQUIRE(a.size() == b.size());
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
}
