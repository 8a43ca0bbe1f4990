#include "tiny_model_builder.h"

#include "backends/cpu/numeric.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <unistd.h>

namespace pi::test {

using gguf::TensorType;
using gguf::Value;
using gguf::ValueType;

std::vector<std::string> tiny_vocab_tokens() {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    char buf[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
    }
    for (const char *piece : {"\xE2\x96\x81", "\xE2\x96\x81H", "ello", "\xE2\x96\x81Hello", "\xE2\x96\x81world",
                              "e", "l", "o", "H", "w", "r", "d", "ll", "el", "lo", "wor", "ld"}) {
        tokens.push_back(piece);
    }
    return tokens;
}

namespace {

void add_tensor(gguf::Writer &w, const TinyModelSpec &spec, std::mt19937 &rng, const std::string &name,
                std::vector<uint64_t> dims) {
    if (spec.omit_tensors.count(name)) return;
    if (name == spec.wrong_shape_tensor) dims.back() += 1;
    uint64_t n = 1;
    for (uint64_t d : dims) n *= d;
    std::normal_distribution<float> normal(0.0f, 0.05f);
    std::vector<float> data(n);
    const bool is_norm = dims.size() == 1 && name.find("norm") != std::string::npos && name.find("bias") == std::string::npos;
    for (float &x : data) x = is_norm ? 1.0f : normal(rng);
    if (spec.q4_0 && dims.size() == 2 && dims[0] % 32 == 0) {
        // Q4_0 blocks: d = amax / 7, codes round(x / d) + 8 clamped to 0..15 (any rounding will do: the tests that
        // use these models compare the engine with itself).
        std::vector<uint8_t> blocks(n / 32 * 18);
        for (uint64_t b = 0; b < n / 32; ++b) {
            const float *x = &data[b * 32];
            float amax = 0.0f;
            for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
            const float d = amax / 7.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            const uint16_t d16 = pi::cpu::fp32_to_fp16(d);
            uint8_t *out = &blocks[b * 18];
            std::memcpy(out, &d16, 2);
            for (int j = 0; j < 16; ++j) {
                const auto code = [&](float v) { return std::min(15, std::max(0, int(std::lround(v * id)) + 8)); };
                out[2 + j] = static_cast<uint8_t>(code(x[j]) | code(x[j + 16]) << 4);
            }
        }
        w.add_tensor(name, TensorType::Q4_0, dims, blocks.data(), blocks.size());
        return;
    }
    w.add_tensor(name, TensorType::F32, dims, data.data(), data.size() * sizeof(float));
}

}  // namespace

gguf::Writer build_tiny_model(const TinyModelSpec &spec) {
    gguf::Writer w(3, spec.pwri_magic);
    const std::string &a = spec.arch;
    auto key = [&](const std::string &k) { return !spec.omit_keys.count(k); };
    if (key("general.architecture")) w.add_string("general.architecture", a);
    w.add_string("general.name", "tiny-" + a);
    if (key(a + ".context_length")) w.add_uint32(a + ".context_length", spec.n_ctx_train);
    if (key(a + ".embedding_length")) w.add_uint32(a + ".embedding_length", spec.n_embd);
    if (key(a + ".block_count")) w.add_uint32(a + ".block_count", spec.n_layer);
    if (key(a + ".feed_forward_length")) w.add_uint32(a + ".feed_forward_length", spec.n_ff);
    if (key(a + ".attention.head_count")) w.add_uint32(a + ".attention.head_count", spec.n_head);
    w.add_uint32(a + ".attention.head_count_kv", spec.n_head_kv);

    const std::vector<std::string> tokens = tiny_vocab_tokens();
    std::vector<Value> token_values, score_values, type_values;
    for (size_t i = 0; i < tokens.size(); ++i) {
        token_values.push_back(gguf::make_string(tokens[i]));
        score_values.push_back(gguf::make_float32(i < 259 ? 0.0f : -float(i)));
        Value t;
        t.type = ValueType::INT32;
        t.i = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        type_values.push_back(t);
    }
    if (key("tokenizer.ggml.model")) w.add_string("tokenizer.ggml.model", "llama");
    if (key("tokenizer.ggml.tokens")) w.add("tokenizer.ggml.tokens", gguf::make_array(ValueType::STRING, token_values));
    w.add("tokenizer.ggml.scores", gguf::make_array(ValueType::FLOAT32, score_values));
    w.add("tokenizer.ggml.token_type", gguf::make_array(ValueType::INT32, type_values));
    w.add_uint32("tokenizer.ggml.bos_token_id", 1);
    w.add_uint32("tokenizer.ggml.eos_token_id", 2);
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0);

    std::mt19937 rng(42);
    const uint64_t E = spec.n_embd, F = spec.n_ff, V = tokens.size();
    const uint64_t hd = E / spec.n_head, q = spec.n_head * hd, kv = spec.n_head_kv * hd;
    const bool falcon = a == "falcon", opt = a == "opt";
    add_tensor(w, spec, rng, "token_embd.weight", {E, V});
    if (opt) add_tensor(w, spec, rng, "position_embd.weight", {E, uint64_t(spec.n_ctx_train) + 2});
    add_tensor(w, spec, rng, "output_norm.weight", {E});
    if (falcon || opt) add_tensor(w, spec, rng, "output_norm.bias", {E});
    if (!opt) add_tensor(w, spec, rng, "output.weight", {E, V});
    for (uint32_t l = 0; l < spec.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add_tensor(w, spec, rng, p + "attn_norm.weight", {E});
        if (falcon || opt) add_tensor(w, spec, rng, p + "attn_norm.bias", {E});
        if (falcon) {
            add_tensor(w, spec, rng, p + "attn_qkv.weight", {E, q + 2 * kv});
        } else {
            add_tensor(w, spec, rng, p + "attn_q.weight", {E, q});
            add_tensor(w, spec, rng, p + "attn_k.weight", {E, kv});
            add_tensor(w, spec, rng, p + "attn_v.weight", {E, kv});
            add_tensor(w, spec, rng, p + "ffn_norm.weight", {E});
        }
        if (opt) {
            add_tensor(w, spec, rng, p + "attn_q.bias", {q});
            add_tensor(w, spec, rng, p + "attn_k.bias", {kv});
            add_tensor(w, spec, rng, p + "attn_v.bias", {kv});
            add_tensor(w, spec, rng, p + "attn_output.bias", {E});
            add_tensor(w, spec, rng, p + "ffn_norm.bias", {E});
            add_tensor(w, spec, rng, p + "ffn_up.bias", {F});
            add_tensor(w, spec, rng, p + "ffn_down.bias", {E});
        }
        add_tensor(w, spec, rng, p + "attn_output.weight", {q, E});
        if (!falcon && !opt) add_tensor(w, spec, rng, p + "ffn_gate.weight", {E, F});
        add_tensor(w, spec, rng, p + "ffn_up.weight", {E, F});
        add_tensor(w, spec, rng, p + "ffn_down.weight", {F, E});
        if (spec.predictors) {
            add_tensor(w, spec, rng, p + "fc1.weight", {E, 16});
            add_tensor(w, spec, rng, p + "fc2.weight", {16, F});
        }
    }
    return w;
}

namespace {
// One directory per test process, removed when the process exits.
struct ProcessTempDir {
    std::string path;
    ProcessTempDir() {
        char pattern[] = "/tmp/pi-test-XXXXXX";
        if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~ProcessTempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};
}  // namespace

std::string write_tiny_model(const TinyModelSpec &spec, const std::string &name) {
    static ProcessTempDir dir;
    static std::atomic<int> counter{0};  // unique names: a test may write two models of the same name
    const std::string path = dir.path + "/" + name + "-" + std::to_string(counter++) + ".gguf";
    build_tiny_model(spec).write_file(path);
    return path;
}

}  // namespace pi::test
