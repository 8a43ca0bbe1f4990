// Session state save/restore: the byte layout of docs/SESSION_STATE.md, exact continuation after a load, the buffer
// rule, and refusal of every truncated, corrupt, crafted or foreign state with the session left unchanged.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/session_state.h"
#include "session_test_helpers.h"

using Catch::Matchers::Contains;
using namespace pi::test;

namespace {

// Offsets of the fields, read from the layout in docs/SESSION_STATE.md (not from the library's code).
struct Layout {
    size_t arch_len, n_layer, weights_hash, kv_type, has_logits, n_past, rng_seed, rng_draws, tokens, logits,
        kv_bytes, kv, checksum;
};

uint32_t get32(const std::vector<uint8_t> &b, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(b[at + i]) << (8 * i);
    return v;
}
uint64_t get64(const std::vector<uint8_t> &b, size_t at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(b[at + i]) << (8 * i);
    return v;
}
void set32(std::vector<uint8_t> &b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void set64(std::vector<uint8_t> &b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

Layout layout_of(const std::vector<uint8_t> &b, size_t n_vocab) {
    Layout l;
    l.arch_len = 24;
    const size_t shape = 28 + get32(b, l.arch_len);
    l.n_layer = shape;
    l.weights_hash = shape + 20;
    l.kv_type = l.weights_hash + 8;
    l.has_logits = l.kv_type + 4;
    l.n_past = l.has_logits + 4;
    l.rng_seed = l.n_past + 8;
    l.rng_draws = l.rng_seed + 8;
    l.tokens = l.rng_draws + 8;
    l.logits = l.tokens + 4 * get64(b, l.n_past);
    l.kv_bytes = l.logits + (get32(b, l.has_logits) ? 4 * n_vocab : 0);
    l.kv = l.kv_bytes + 8;
    l.checksum = b.size() - 8;
    return l;
}

// A crafted state passes the checksum: recompute it after editing.
void reseal(std::vector<uint8_t> &b) { set64(b, b.size() - 8, pi::xxhash64(b.data(), b.size() - 8, 0)); }

const size_t kVocab = tiny_vocab_tokens().size();

SessionSettings sampled(uint64_t seed) {
    SessionSettings s;
    s.temperature = 1.1f;
    s.seed = seed;
    return s;
}

// A session with a prompt and some sampled steps behind it.
SessionPtr busy_session(pi_model *model, uint64_t seed, size_t steps) {
    SessionPtr s = make_session(model, sampled(seed));
    const std::vector<pi_token> prompt = prompt_tokens(7, 1);
    REQUIRE(pi_session_eval(s.get(), prompt.data(), prompt.size()) == PI_OK);
    std::vector<pi_token> out;
    REQUIRE(generate(s.get(), steps, out) == PI_OK);
    return s;
}

// What the loader must leave alone when it refuses: checked by comparing with a twin that never saw the load.
void check_unchanged(pi_session *s, pi_session *twin) {
    CHECK(pi_session_n_past(s) == pi_session_n_past(twin));
    CHECK(same_bits(logits_of(s), logits_of(twin)));
    CHECK(save_state(s) == save_state(twin));
}

}  // namespace

TEST_CASE("xxhash64 matches the published algorithm", "[session][state]") {
    // Values from the reference implementation (python xxhash 3.x).
    CHECK(pi::xxhash64("", 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(pi::xxhash64("a", 1, 0) == 0xD24EC4F1A98C6E5Bull);
    CHECK(pi::xxhash64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
    CHECK(pi::xxhash64("0123456789abcdefghijklmnopqrstuvwxyz", 36, 12345) == 0x0050FDEDCF288068ull);
    std::vector<uint8_t> bytes(45);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i);
    CHECK(pi::xxhash64(bytes.data(), bytes.size(), 0) == 0x10FDD84D6409ABDFull);
    bytes.resize(768);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i);
    CHECK(pi::xxhash64(bytes.data(), bytes.size(), 0) == 0x8E03C838C596036Full);
}

TEST_CASE("a loaded state continues exactly like the original", "[session][state]") {
    ModelHandle m;
    SessionPtr original = busy_session(m.model, 42, 5);
    const std::vector<uint8_t> state = save_state(original.get());

    // The layout as documented: magic, version, the fingerprint, the counts, and the size formula.
    REQUIRE(state.size() > 8);
    CHECK(std::string(state.begin(), state.begin() + 8) == std::string("PISTATE\0", 8));
    CHECK(get32(state, 8) == 1);
    CHECK(get64(state, 16) == state.size());
    CHECK(std::string(state.begin() + 28, state.begin() + 28 + get32(state, 24)) == "llama");
    const Layout l = layout_of(state, kVocab);
    CHECK(get32(state, l.n_layer) == 2);
    CHECK(get64(state, l.n_past) == 12);
    CHECK(get32(state, l.has_logits) == 1);
    CHECK(get64(state, l.rng_seed) == 42);
    CHECK(get64(state, l.rng_draws) == 5);  // one draw per sampled token
    const size_t kv = 2 * 2 * 12 * 16 * 2;  // keys and values x layers x positions x kv_dim x F16
    CHECK(get64(state, l.kv_bytes) == kv);
    CHECK(state.size() == 104 + 5 + 4 * 12 + 4 * kVocab + kv);

    // A fresh session with another seed and another n_ctx takes it over: same logits, same next 16 tokens.
    SessionSettings other = sampled(999);
    other.n_ctx = 48;
    SessionPtr loaded = make_session(m.model, other);
    REQUIRE(pi_session_state_load(loaded.get(), state.data(), state.size()) == PI_OK);
    CHECK(pi_session_n_past(loaded.get()) == 12);
    CHECK(same_bits(logits_of(loaded.get()), logits_of(original.get())));
    CHECK(save_state(loaded.get()) == state);
    std::vector<pi_token> a, b;
    REQUIRE(generate(original.get(), 16, a) == PI_OK);
    REQUIRE(generate(loaded.get(), 16, b) == PI_OK);
    CHECK(a == b);

    // Without the state, seed 999 goes elsewhere: the sampler's position really came from the state.
    SessionPtr unloaded = busy_session(m.model, 999, 5);
    std::vector<pi_token> c;
    REQUIRE(generate(unloaded.get(), 16, c) == PI_OK);
    CHECK(c != a);

    // Loading the same state again rewinds the session (a state is a checkpoint).
    REQUIRE(pi_session_state_load(loaded.get(), state.data(), state.size()) == PI_OK);
    std::vector<pi_token> again;
    REQUIRE(generate(loaded.get(), 16, again) == PI_OK);
    CHECK(again == a);
}

TEST_CASE("states without logits and of empty sessions", "[session][state]") {
    ModelHandle m;
    SessionPtr empty = make_session(m.model);
    const std::vector<uint8_t> empty_state = save_state(empty.get());
    CHECK(empty_state.size() == 104 + 5);

    SessionPtr s = busy_session(m.model, 3, 2);
    REQUIRE(pi_session_truncate(s.get(), 4) == PI_OK);
    const std::vector<uint8_t> no_logits = save_state(s.get());
    CHECK(get32(no_logits, layout_of(no_logits, kVocab).has_logits) == 0);

    SessionPtr target = busy_session(m.model, 3, 2);
    REQUIRE(pi_session_state_load(target.get(), no_logits.data(), no_logits.size()) == PI_OK);
    CHECK(pi_session_n_past(target.get()) == 4);
    const float *logits = nullptr;
    size_t n = 0;
    CHECK(pi_session_logits(target.get(), &logits, &n) == PI_ERR_INVALID_ARGUMENT);
    REQUIRE(pi_session_state_load(target.get(), empty_state.data(), empty_state.size()) == PI_OK);
    CHECK(pi_session_n_past(target.get()) == 0);
}

TEST_CASE("state save follows the buffer rule", "[session][state]") {
    ModelHandle m;
    SessionPtr s = busy_session(m.model, 1, 1);
    size_t needed = 0;
    REQUIRE(pi_session_state_size(s.get(), &needed) == PI_OK);

    size_t n = 0;
    CHECK(pi_session_state_save(s.get(), nullptr, 0, &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    std::vector<uint8_t> small(needed - 1, 0xCD);
    n = 0;
    CHECK(pi_session_state_save(s.get(), small.data(), small.size(), &n) == PI_ERR_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    CHECK_THAT(std::string(pi_last_error()), Contains(std::to_string(needed)));
    CHECK(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0xCD; }));  // nothing written

    n = 5;
    CHECK(pi_session_state_save(s.get(), nullptr, 10, &n) == PI_ERR_INVALID_ARGUMENT);
    CHECK(n == 5);
    std::vector<uint8_t> big(needed + 100, 0xCD);
    CHECK(pi_session_state_save(s.get(), big.data(), big.size(), nullptr) == PI_ERR_INVALID_ARGUMENT);
    REQUIRE(pi_session_state_save(s.get(), big.data(), big.size(), &n) == PI_OK);
    CHECK(n == needed);
    CHECK(big[needed] == 0xCD);  // nothing beyond the state
}

TEST_CASE("every truncation and random corruptions are refused, the session unchanged", "[session][state]") {
    ModelHandle m;
    const std::vector<uint8_t> state = save_state(busy_session(m.model, 8, 3).get());
    SessionPtr s = busy_session(m.model, 77, 2), twin = busy_session(m.model, 77, 2);

    for (size_t size = 0; size < state.size(); ++size) {
        const std::vector<uint8_t> cut(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(size));
        const uint8_t dummy = 0;
        const pi_status st = pi_session_state_load(s.get(), size ? cut.data() : &dummy, size);
        if (st != PI_ERR_FORMAT) FAIL("truncated to " << size << " bytes: status " << st);
    }
    CHECK_THAT(std::string(pi_last_error()), Contains("truncated"));
    std::vector<uint8_t> longer = state;
    longer.push_back(0);
    CHECK(pi_session_state_load(s.get(), longer.data(), longer.size()) == PI_ERR_FORMAT);

    std::mt19937 rng(2024);
    for (int trial = 0; trial < 3000; ++trial) {
        std::vector<uint8_t> bad = state;
        const int flips = 1 + trial % 3;
        for (int f = 0; f < flips; ++f) {
            bad[rng() % bad.size()] ^= uint8_t(1 + rng() % 255);
        }
        const pi_status st = pi_session_state_load(s.get(), bad.data(), bad.size());
        if (st != PI_ERR_FORMAT) FAIL("corruption trial " << trial << ": status " << st);
    }
    check_unchanged(s.get(), twin.get());
    std::vector<pi_token> a, b;
    REQUIRE(generate(s.get(), 8, a) == PI_OK);
    REQUIRE(generate(twin.get(), 8, b) == PI_OK);
    CHECK(a == b);
}

TEST_CASE("crafted states with a valid checksum are checked field by field", "[session][state]") {
    ModelHandle m;
    const std::vector<uint8_t> state = save_state(busy_session(m.model, 8, 3).get());
    const Layout l = layout_of(state, kVocab);
    SessionPtr s = busy_session(m.model, 77, 2), twin = busy_session(m.model, 77, 2);

    struct Case {
        const char *name;
        pi_status status;
        const char *message;
        void (*edit)(std::vector<uint8_t> &, const Layout &);
    };
    const Case cases[] = {
        {"magic", PI_ERR_FORMAT, "magic", [](std::vector<uint8_t> &b, const Layout &) { b[0] = 'X'; }},
        {"version", PI_ERR_FORMAT, "version 2", [](std::vector<uint8_t> &b, const Layout &) { set32(b, 8, 2); }},
        {"reserved", PI_ERR_FORMAT, "reserved", [](std::vector<uint8_t> &b, const Layout &) { set32(b, 12, 1); }},
        {"arch length", PI_ERR_FORMAT, "arch length",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.arch_len, 0); }},
        {"arch length huge", PI_ERR_FORMAT, "arch length",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.arch_len, 0xFFFFFFF0u); }},
        {"kv_type", PI_ERR_FORMAT, "kv_type", [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.kv_type, 7); }},
        {"has_logits", PI_ERR_FORMAT, "has_logits",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.has_logits, 2); }},
        {"n_past huge", PI_ERR_FORMAT, "n_past",
         [](std::vector<uint8_t> &b, const Layout &l) { set64(b, l.n_past, ~uint64_t(0)); }},
        {"n_past off by one", PI_ERR_FORMAT, "",
         [](std::vector<uint8_t> &b, const Layout &l) { set64(b, l.n_past, get64(b, l.n_past) + 1); }},
        {"draws", PI_ERR_FORMAT, "draw count",
         [](std::vector<uint8_t> &b, const Layout &l) { set64(b, l.rng_draws, (uint64_t(1) << 32) + 1); }},
        {"token too big", PI_ERR_FORMAT, "token 2",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.tokens + 8, uint32_t(kVocab)); }},
        {"token negative", PI_ERR_FORMAT, "token 0",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.tokens, 0xFFFFFFFFu); }},
        {"NaN logit", PI_ERR_FORMAT, "logit 3",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.logits + 12, 0x7FC00000u); }},
        {"infinite logit", PI_ERR_FORMAT, "logit 0",
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.logits, 0xFF800000u); }},
        {"kv bytes", PI_ERR_FORMAT, "KV rows",
         [](std::vector<uint8_t> &b, const Layout &l) { set64(b, l.kv_bytes, get64(b, l.kv_bytes) - 2); }},
        {"infinite key", PI_ERR_FORMAT, "not finite",
         [](std::vector<uint8_t> &b, const Layout &l) { b[l.kv + 10] = 0x00, b[l.kv + 11] = 0x7C; }},
        {"NaN value", PI_ERR_FORMAT, "not finite",
         [](std::vector<uint8_t> &b, const Layout &) { b[b.size() - 10] = 0x01, b[b.size() - 9] = 0xFE; }},
        {"another shape", PI_ERR_FORMAT, "KV rows",  // its KV block no longer matches its own shape
         [](std::vector<uint8_t> &b, const Layout &l) { set32(b, l.n_layer, 3); }},
        {"another arch", PI_ERR_INVALID_ARGUMENT, "arch",
         [](std::vector<uint8_t> &b, const Layout &) { b[28] = 'x'; }},
        {"another n_vocab", PI_ERR_INVALID_ARGUMENT, "n_vocab",  // 4 bytes of logits fewer: consistent again
         [](std::vector<uint8_t> &b, const Layout &l) {
             set32(b, l.n_layer + 16, uint32_t(kVocab - 1));
             b.erase(b.begin() + static_cast<std::ptrdiff_t>(l.kv_bytes - 4), b.begin() + static_cast<std::ptrdiff_t>(l.kv_bytes));
             set64(b, 16, b.size());
         }},
        {"other weights", PI_ERR_INVALID_ARGUMENT, "weights",
         [](std::vector<uint8_t> &b, const Layout &l) { set64(b, l.weights_hash, get64(b, l.weights_hash) ^ 1); }},
    };
    for (const Case &c : cases) {
        INFO(c.name);
        std::vector<uint8_t> bad = state;
        c.edit(bad, l);
        reseal(bad);
        CHECK(pi_session_state_load(s.get(), bad.data(), bad.size()) == c.status);
        CHECK_THAT(std::string(pi_last_error()), Contains(c.message));
    }
    check_unchanged(s.get(), twin.get());

    // The untouched state still loads (the cases above failed for their edit, not for something else).
    REQUIRE(pi_session_state_load(s.get(), state.data(), state.size()) == PI_OK);
}

TEST_CASE("states of other models, other KV types and larger contexts are refused", "[session][state]") {
    ModelHandle m;
    const std::vector<uint8_t> state = save_state(busy_session(m.model, 8, 13).get());  // n_past 20

    // Another KV type.
    SessionSettings f32 = sampled(1);
    f32.kv_type = PI_KV_F32;
    SessionPtr s32 = make_session(m.model, f32);
    CHECK(pi_session_state_load(s32.get(), state.data(), state.size()) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("kv_type") && Contains("PI_KV_F16") && Contains("PI_KV_F32"));
    CHECK(pi_session_n_past(s32.get()) == 0);

    // A session too short for the state.
    SessionSettings short_ctx = sampled(1);
    short_ctx.n_ctx = 16;
    SessionPtr small = make_session(m.model, short_ctx);
    CHECK(pi_session_state_load(small.get(), state.data(), state.size()) == PI_ERR_CONTEXT_FULL);
    CHECK_THAT(std::string(pi_last_error()), Contains("20") && Contains("16"));
    CHECK(pi_session_n_past(small.get()) == 0);

    // Other shapes and architectures.
    struct Other {
        const char *field;
        TinyModelSpec spec;
    };
    std::vector<Other> others(3);
    others[0].field = "n_layer";
    others[0].spec.n_layer = 3;
    others[1].field = "arch";
    others[1].spec.arch = "bamboo";
    others[2].field = "n_head_kv";
    others[2].spec.n_head_kv = 4;
    for (const Other &o : others) {
        INFO(o.field);
        ModelHandle other(o.spec, "other");
        SessionPtr s = make_session(other.model);
        CHECK(pi_session_state_load(s.get(), state.data(), state.size()) == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(std::string(pi_last_error()), Contains("another model") && Contains(o.field));
        CHECK(pi_session_n_past(s.get()) == 0);
    }
}

TEST_CASE("a model of the same shape with other weights is refused", "[session][state]") {
    // The same tiny model, but the last 16 bytes of its last tensor altered in the file.
    const std::string path = write_tiny_model(TinyModelSpec(), "weights");
    std::vector<char> bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const std::string altered_path = path + ".altered.gguf";
    {
        std::vector<char> altered = bytes;
        // The data section ends with the last tensor plus at most 31 bytes of alignment padding.
        const float replacement[8] = {0.01f, -0.02f, 0.03f, -0.04f, 0.05f, -0.06f, 0.07f, -0.08f};
        std::memcpy(altered.data() + altered.size() - 64, replacement, sizeof replacement);
        std::ofstream out(altered_path, std::ios::binary);
        out.write(altered.data(), static_cast<std::streamsize>(altered.size()));
    }
    ModelHandle original(path), altered(altered_path);
    SessionPtr s = busy_session(original.model, 4, 2);
    const std::vector<uint8_t> state = save_state(s.get());

    SessionPtr same = make_session(original.model);
    CHECK(pi_session_state_load(same.get(), state.data(), state.size()) == PI_OK);
    SessionPtr other = make_session(altered.model);
    CHECK(pi_session_state_load(other.get(), state.data(), state.size()) == PI_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(pi_last_error()), Contains("weights"));
    CHECK(pi_session_n_past(other.get()) == 0);
    std::remove(altered_path.c_str());
}
