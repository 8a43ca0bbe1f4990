// Loading models through the C API: facts reported, every kind of bad file, backends, progress and cancel.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "powerinfer/powerinfer.h"
#include "tiny_model_builder.h"

using Catch::Matchers::Contains;
using pi::test::TinyModelSpec;
using pi::test::write_tiny_model;

namespace {

struct LoadResult {
    pi_status status;
    std::string message;
};

LoadResult try_load(const std::string &path, const pi_model_params *params = nullptr) {
    pi_model *model = reinterpret_cast<pi_model *>(0x1);  // must stay untouched on failure
    const pi_status st = pi_model_load(path.c_str(), params, &model);
    LoadResult r{st, pi_last_error()};
    if (st == PI_OK) {
        pi_model_free(model);
    } else {
        CHECK(model == reinterpret_cast<pi_model *>(0x1));
    }
    return r;
}

std::vector<char> read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string &path, const std::vector<char> &bytes, size_t n) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(n));
}

}  // namespace

TEST_CASE("model facts for every architecture", "[api][model]") {
    for (const std::string arch : {"llama", "bamboo", "falcon", "opt"}) {
        DYNAMIC_SECTION(arch) {
            TinyModelSpec spec;
            spec.arch = arch;
            spec.n_head_kv = arch == "opt" ? 4 : 2;
            spec.predictors = arch != "llama";
            const std::string path = write_tiny_model(spec, arch);
            pi_model *model = nullptr;
            REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
            pi_model_info info;
            pi_model_info_init(&info);
            REQUIRE(pi_model_get_info(model, &info) == PI_OK);
            CHECK(info.arch == arch);
            CHECK(std::string(info.name) == "tiny-" + arch);
            CHECK(info.n_vocab == pi::test::tiny_vocab_tokens().size());
            CHECK(info.n_embd == spec.n_embd);
            CHECK(info.n_layer == spec.n_layer);
            CHECK(info.n_ff == spec.n_ff);
            CHECK(info.n_head == spec.n_head);
            CHECK(info.n_head_kv == spec.n_head_kv);
            CHECK(info.n_ctx_train == spec.n_ctx_train);
            CHECK(info.is_sparse == (spec.predictors ? 1 : 0));
            CHECK(info.gpu_bytes == 0);
            CHECK(info.file_bytes == info.n_params * 4);  // all F32
            const std::string act = info.ffn_activation;
            CHECK(act == (arch == "llama" ? "silu" : arch == "bamboo" ? "drelu" : "relu"));
            CHECK(pi_token_bos(model) == 1);
            CHECK(pi_token_eos(model) == 2);
            pi_model_free(model);
        }
    }
}

TEST_CASE("a llama file from PowerInfer (PWRI magic or predictors) runs ReGLU", "[api][model]") {
    TinyModelSpec spec;
    spec.pwri_magic = true;
    const std::string path = write_tiny_model(spec, "pwri");
    pi_model *model = nullptr;
    REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
    pi_model_info info;
    pi_model_info_init(&info);
    REQUIRE(pi_model_get_info(model, &info) == PI_OK);
    CHECK(std::string(info.ffn_activation) == "reglu");
    pi_model_free(model);
}

TEST_CASE("parameter count is the sum over all tensors", "[api][model]") {
    TinyModelSpec spec;
    const std::string path = write_tiny_model(spec, "params");
    pi_model *model = nullptr;
    REQUIRE(pi_model_load(path.c_str(), nullptr, &model) == PI_OK);
    pi_model_info info;
    pi_model_info_init(&info);
    REQUIRE(pi_model_get_info(model, &info) == PI_OK);
    const uint64_t E = 32, F = 64, V = info.n_vocab, kv = 16;
    const uint64_t per_layer = E + E * E + 2 * E * kv + E * E + E + 3 * E * F;
    CHECK(info.n_params == E * V * 2 + E + 2 * per_layer);
    // A dense decode step reads everything but the V - 1 embedding rows it does not look up.
    CHECK(info.decode_weight_bytes == (info.n_params - (V - 1) * E) * 4);

    // An older client's smaller struct (without decode_weight_bytes) gets the fields it knows and nothing beyond.
    struct {
        pi_model_info info;
        uint64_t canary;
    } old_client;
    std::memset(&old_client, 0, sizeof old_client);
    old_client.info.struct_size = offsetof(pi_model_info, decode_weight_bytes);
    old_client.info.decode_weight_bytes = 123;
    REQUIRE(pi_model_get_info(model, &old_client.info) == PI_OK);
    CHECK(old_client.info.n_layer == 2);
    CHECK(old_client.info.decode_weight_bytes == 123);
    CHECK(old_client.info.struct_size == offsetof(pi_model_info, decode_weight_bytes));
    pi_model_free(model);
}

TEST_CASE("missing and unreadable files give PI_ERR_IO naming the path", "[api][model]") {
    LoadResult r = try_load("/nonexistent/dir/model.gguf");
    CHECK(r.status == PI_ERR_IO);
    CHECK_THAT(r.message, Contains("/nonexistent/dir/model.gguf"));
    r = try_load("/tmp");
    CHECK((r.status == PI_ERR_IO || r.status == PI_ERR_FORMAT));
}

TEST_CASE("every truncation of a model file gives PI_ERR_FORMAT", "[api][model]") {
    TinyModelSpec spec;
    spec.n_layer = 1;
    const std::string path = write_tiny_model(spec, "truncate");
    const std::vector<char> bytes = read_bytes(path);
    const std::string cut = path + ".cut";
    // Every length inside the header and metadata, then a stride through the tensor data.
    std::vector<size_t> lengths;
    for (size_t n = 0; n < 4096 && n < bytes.size(); ++n) lengths.push_back(n);
    for (size_t n = 4096; n < bytes.size(); n += 997) lengths.push_back(n);
    lengths.push_back(bytes.size() - 1);
    for (size_t n : lengths) {
        write_bytes(cut, bytes, n);
        const LoadResult r = try_load(cut);
        INFO("length " << n << ": " << r.message);
        REQUIRE(r.status == PI_ERR_FORMAT);
        REQUIRE(!r.message.empty());
    }
    std::remove(cut.c_str());
}

TEST_CASE("structural problems are named", "[api][model]") {
    SECTION("missing tensor") {
        TinyModelSpec spec;
        spec.omit_tensors = {"blk.1.ffn_up.weight"};
        const LoadResult r = try_load(write_tiny_model(spec, "missing_tensor"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("blk.1.ffn_up.weight") && Contains("missing"));
    }
    SECTION("wrong shape") {
        TinyModelSpec spec;
        spec.wrong_shape_tensor = "blk.0.attn_k.weight";
        const LoadResult r = try_load(write_tiny_model(spec, "wrong_shape"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("blk.0.attn_k.weight") && Contains("shape"));
    }
    SECTION("missing hyper-parameter") {
        TinyModelSpec spec;
        spec.omit_keys = {"llama.block_count"};
        const LoadResult r = try_load(write_tiny_model(spec, "missing_key"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("llama.block_count"));
    }
    SECTION("missing architecture") {
        TinyModelSpec spec;
        spec.omit_keys = {"general.architecture"};
        const LoadResult r = try_load(write_tiny_model(spec, "missing_arch"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("general.architecture"));
    }
    SECTION("unknown architecture") {
        TinyModelSpec spec;
        spec.arch = "mamba";
        const LoadResult r = try_load(write_tiny_model(spec, "mamba"));
        CHECK(r.status == PI_ERR_UNSUPPORTED);
        CHECK_THAT(r.message, Contains("mamba"));
    }
    SECTION("missing tokenizer") {
        TinyModelSpec spec;
        spec.omit_keys = {"tokenizer.ggml.tokens"};
        const LoadResult r = try_load(write_tiny_model(spec, "no_tokens"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("tokenizer.ggml.tokens"));
    }
    SECTION("predictors in some layers only") {
        TinyModelSpec spec;
        spec.predictors = true;
        spec.omit_tensors = {"blk.1.fc1.weight", "blk.1.fc2.weight"};
        const LoadResult r = try_load(write_tiny_model(spec, "half_predictors"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("blk.1.fc1.weight"));
    }
    SECTION("heads that do not divide the embedding") {
        TinyModelSpec spec;
        spec.n_head = 5;
        spec.n_head_kv = 5;
        const LoadResult r = try_load(write_tiny_model(spec, "bad_heads"));
        CHECK(r.status == PI_ERR_FORMAT);
        CHECK_THAT(r.message, Contains("head count"));
    }
}

TEST_CASE("backend selection", "[api][model]") {
    TinyModelSpec spec;
    const std::string path = write_tiny_model(spec, "backend");
    pi_model_params params;
    pi_model_params_init(&params);
    CHECK(std::string(params.backend) == "auto");
    CHECK(params.vram_budget == PI_VRAM_BUDGET_AUTO);
    CHECK(params.use_mmap == 1);

    params.backend = "quantum";
    LoadResult r = try_load(path, &params);
    CHECK(r.status == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(r.message, Contains("quantum"));

    // No GPU module is built next to the library in this configuration: a clear backend error naming the module.
    params.backend = "cuda";
    r = try_load(path, &params);
    CHECK(r.status == PI_ERR_BACKEND);
    CHECK_THAT(r.message, Contains("libpowerinfer-cuda.so"));
    params.backend = "hip";
    r = try_load(path, &params);
    CHECK(r.status == PI_ERR_BACKEND);
    CHECK_THAT(r.message, Contains("libpowerinfer-hip.so"));

    // "auto" falls back to the CPU; a zero budget means CPU only whatever the backend.
    params.backend = "auto";
    CHECK(try_load(path, &params).status == PI_OK);
    params.backend = "cuda";
    params.vram_budget = 0;
    CHECK(try_load(path, &params).status == PI_OK);
    params.backend = nullptr;  // NULL means the default
    CHECK(try_load(path, &params).status == PI_OK);
    params.backend = "cpu";
    params.n_threads = -1;
    CHECK(try_load(path, &params).status == PI_ERR_INVALID_ARGUMENT);
}

TEST_CASE("without mmap the file is read and works the same", "[api][model]") {
    TinyModelSpec spec;
    const std::string path = write_tiny_model(spec, "nommap");
    pi_model_params params;
    pi_model_params_init(&params);
    params.use_mmap = 0;
    CHECK(try_load(path, &params).status == PI_OK);
}

namespace {
struct ProgressLog {
    std::vector<float> fractions;
    int cancel_after = -1;  // cancel on this call (0-based); -1 never
};

int record_progress(float fraction, void *user) {
    auto *log = static_cast<ProgressLog *>(user);
    log->fractions.push_back(fraction);
    return log->cancel_after >= 0 && static_cast<int>(log->fractions.size()) > log->cancel_after ? 1 : 0;
}
}  // namespace

TEST_CASE("load progress rises to 1 and a non-zero return cancels", "[api][model]") {
    TinyModelSpec spec;
    const std::string path = write_tiny_model(spec, "progress");
    pi_model_params params;
    pi_model_params_init(&params);
    ProgressLog log;
    params.progress = record_progress;
    params.progress_user_data = &log;
    REQUIRE(try_load(path, &params).status == PI_OK);
    REQUIRE(log.fractions.size() >= 2);
    CHECK(log.fractions.front() == 0.0f);
    CHECK(log.fractions.back() == 1.0f);
    for (size_t i = 1; i < log.fractions.size(); ++i) CHECK(log.fractions[i] >= log.fractions[i - 1]);

    for (int when = 0; when < 3; ++when) {
        ProgressLog cancel;
        cancel.cancel_after = when;
        params.progress_user_data = &cancel;
        const LoadResult r = try_load(path, &params);
        CHECK(r.status == PI_ERR_CANCELLED);
        CHECK_THAT(r.message, Contains("cancel"));
    }
}
