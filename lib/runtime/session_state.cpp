#include "runtime/session_state.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"

// The KV rows are copied as the cache holds them (host byte order); every field around them is written
// little-endian explicitly. All platforms the library targets are little-endian, so the two agree.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the session state format assumes a little-endian host");

namespace pi {

// ---- XXH64 (Debian's libxxhash) -----------------------------------------------------------------------------
// Fast enough (several GB/s) that checksumming a multi-GB KV state costs less than copying it.
uint64_t xxhash64(const void *data, size_t n, uint64_t seed) { return XXH64(data, n, seed); }

// ---- the model fingerprint --------------------------------------------------------------------------------------
namespace {

void put32(std::string &s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xFF));
}
void put64(std::string &s, uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(char((v >> (8 * i)) & 0xFF));
}

}  // namespace

ModelFingerprint ModelFingerprint::of(const Model &model) {
    const HParams &hp = model.hparams();
    ModelFingerprint f;
    f.arch = hp.arch_name;
    f.n_layer = hp.n_layer;
    f.n_embd = hp.n_embd;
    f.n_head_kv = hp.n_head_kv;
    f.head_dim = hp.head_dim;
    f.n_vocab = hp.n_vocab;
    constexpr uint64_t kWindow = 1024;
    uint64_t h = 0;
    std::string shape;
    for (const gguf::TensorInfo &t : model.file().tensors()) {
        h = xxhash64(t.name.data(), t.name.size(), h);
        shape.clear();
        put32(shape, static_cast<uint32_t>(t.type));
        put32(shape, static_cast<uint32_t>(t.dims.size()));
        for (uint64_t d : t.dims) put64(shape, d);
        h = xxhash64(shape.data(), shape.size(), h);
        const uint8_t *data = model.file().tensor_data(t);
        const uint64_t w = std::min(kWindow, t.n_bytes);
        h = xxhash64(data, w, h);
        h = xxhash64(data + (t.n_bytes - w) / 2, w, h);
        h = xxhash64(data + (t.n_bytes - w), w, h);
    }
    f.weights_hash = h;
    return f;
}

std::string ModelFingerprint::difference_from(const ModelFingerprint &model) const {
    auto differs = [](const char *field, const std::string &state, const std::string &mine) {
        return std::string(field) + " is " + state + " in the state, " + mine + " in this model";
    };
    if (arch != model.arch) return differs("arch", "'" + arch + "'", "'" + model.arch + "'");
    const struct {
        const char *name;
        uint32_t state, mine;
    } fields[] = {{"n_layer", n_layer, model.n_layer},       {"n_embd", n_embd, model.n_embd},
                  {"n_head_kv", n_head_kv, model.n_head_kv}, {"head_dim", head_dim, model.head_dim},
                  {"n_vocab", n_vocab, model.n_vocab}};
    for (const auto &f : fields) {
        if (f.state != f.mine) return differs(f.name, std::to_string(f.state), std::to_string(f.mine));
    }
    if (weights_hash != model.weights_hash) {
        return "the weights differ (a model of the same shape but other tensor data: weights hash " +
               std::to_string(weights_hash) + " in the state, " + std::to_string(model.weights_hash) +
               " in this model)";
    }
    return "";
}

// ---- sizes ------------------------------------------------------------------------------------------------------
namespace {

size_t checked_mul(size_t a, uint64_t b, const char *what) {
    size_t r;
    if (b > SIZE_MAX || __builtin_mul_overflow(a, static_cast<size_t>(b), &r)) {
        fail(PI_ERR_FORMAT, std::string("session state: the size of ") + what + " overflows");
    }
    return r;
}

size_t element_bytes(KvType type) { return type == KvType::F16 ? 2 : 4; }

// Fixed fields: magic, version, reserved, total size | arch length | 5 shape numbers, weights hash |
// kv_type, has_logits, n_past, rng seed, rng draws | kv bytes | checksum.
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;
constexpr size_t kFixedBytes = kHeaderBytes + 4 + 5 * 4 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8;
constexpr uint32_t kMaxArchBytes = 64;

}  // namespace

size_t kv_state_bytes(const ModelFingerprint &model, KvType type, uint64_t n_past) {
    size_t n = checked_mul(2 * element_bytes(type), model.n_layer, "the KV rows");
    n = checked_mul(n, model.kv_dim(), "the KV rows");
    return checked_mul(n, n_past, "the KV rows");
}

size_t encoded_state_size(const SessionState &s) {
    return kFixedBytes + s.model.arch.size() + s.tokens.size() * sizeof(Token) +
           (s.has_logits ? s.logits.size() * sizeof(float) : 0) + s.kv_bytes;
}

// ---- encoding ---------------------------------------------------------------------------------------------------
namespace {

class Writer {
public:
    explicit Writer(uint8_t *out) : p_(out) {}
    void bytes(const void *src, size_t n) {
        if (n) std::memcpy(p_, src, n);
        p_ += n;
    }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) *p_++ = uint8_t(v >> (8 * i));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) *p_++ = uint8_t(v >> (8 * i));
    }
    uint8_t *skip(size_t n) {
        uint8_t *at = p_;
        p_ += n;
        return at;
    }
    uint8_t *pos() const { return p_; }

private:
    uint8_t *p_;
};

}  // namespace

void encode_state(const SessionState &s, const std::function<void(uint8_t *)> &write_kv, uint8_t *out) {
    if (s.model.arch.empty() || s.model.arch.size() > kMaxArchBytes) {
        fail(PI_ERR_UNSUPPORTED, "session state: the architecture name '" + s.model.arch + "' cannot be stored");
    }
    if (s.rng.draws > kMaxSessionStateDraws) {
        fail(PI_ERR_UNSUPPORTED, "session state: the sampler has drawn more than 2^32 random numbers since its "
                                 "seed; reset the session to save it");
    }
    const size_t total = encoded_state_size(s);
    Writer w(out);
    w.bytes(kSessionStateMagic, sizeof kSessionStateMagic);
    w.u32(kSessionStateVersion);
    w.u32(0);
    w.u64(total);
    w.u32(static_cast<uint32_t>(s.model.arch.size()));
    w.bytes(s.model.arch.data(), s.model.arch.size());
    for (uint32_t v : {s.model.n_layer, s.model.n_embd, s.model.n_head_kv, s.model.head_dim, s.model.n_vocab}) w.u32(v);
    w.u64(s.model.weights_hash);
    w.u32(static_cast<uint32_t>(s.kv_type));
    w.u32(s.has_logits ? 1 : 0);
    w.u64(s.tokens.size());
    w.u64(s.rng.seed);
    w.u64(s.rng.draws);
    for (Token t : s.tokens) w.u32(static_cast<uint32_t>(t));
    if (s.has_logits) {
        for (float f : s.logits) {
            uint32_t bits;
            std::memcpy(&bits, &f, 4);
            w.u32(bits);
        }
    }
    w.u64(s.kv_bytes);
    write_kv(w.skip(s.kv_bytes));
    w.u64(xxhash64(out, size_t(w.pos() - out), 0));
}

// ---- decoding ---------------------------------------------------------------------------------------------------
namespace {

[[noreturn]] void corrupt(const std::string &what) { fail(PI_ERR_FORMAT, "session state: " + what); }

// Every read is bounds-checked: a state that passed its checksum can still have been crafted.
class Reader {
public:
    Reader(const uint8_t *data, size_t size) : p_(data), end_(data + size) {}
    const uint8_t *take(size_t n, const char *what) {
        if (n > size_t(end_ - p_)) corrupt(std::string("truncated: ") + what + " is cut off");
        const uint8_t *at = p_;
        p_ += n;
        return at;
    }
    uint32_t u32(const char *what) {
        const uint8_t *b = take(4, what);
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint32_t(b[i]) << (8 * i);
        return v;
    }
    uint64_t u64(const char *what) {
        const uint8_t *b = take(8, what);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(b[i]) << (8 * i);
        return v;
    }
    size_t left() const { return size_t(end_ - p_); }

private:
    const uint8_t *p_;
    const uint8_t *end_;
};

void check_kv_finite(const uint8_t *kv, size_t bytes, KvType type) {
    // A non-finite key or value would turn every later attention into NaN (and NaN logits into undefined sampling).
    if (type == KvType::F16) {
        for (size_t i = 0; i + 2 <= bytes; i += 2) {
            uint16_t h;
            std::memcpy(&h, kv + i, 2);
            if ((h & 0x7C00) == 0x7C00) corrupt("KV value " + std::to_string(i / 2) + " is not finite");
        }
    } else {
        for (size_t i = 0; i + 4 <= bytes; i += 4) {
            uint32_t f;
            std::memcpy(&f, kv + i, 4);
            if ((f & 0x7F800000u) == 0x7F800000u) corrupt("KV value " + std::to_string(i / 4) + " is not finite");
        }
    }
}

}  // namespace

SessionState decode_state(const uint8_t *data, size_t size) {
    const size_t magic_seen = std::min(size, sizeof kSessionStateMagic);
    if (magic_seen > 0 && std::memcmp(data, kSessionStateMagic, magic_seen) != 0) {
        corrupt("not a session state (bad magic; a state starts with \"PISTATE\")");
    }
    Reader r(data, size);
    r.take(sizeof kSessionStateMagic, "the magic");
    const uint32_t version = r.u32("the version");
    if (version != kSessionStateVersion) {
        corrupt("format version " + std::to_string(version) + " is not supported (this library reads version " +
                std::to_string(kSessionStateVersion) + ")");
    }
    if (r.u32("the reserved field") != 0) corrupt("the reserved header field is not 0");
    const uint64_t total = r.u64("the total size");
    if (total != size) {
        corrupt(std::string(size < total ? "truncated" : "trailing bytes") + ": the state says " +
                std::to_string(total) + " bytes, " + std::to_string(size) + " were given");
    }
    if (size < kFixedBytes) corrupt("truncated: " + std::to_string(size) + " bytes is below the minimum size");
    uint64_t stored_sum = 0;
    for (int i = 0; i < 8; ++i) stored_sum |= uint64_t(data[size - 8 + i]) << (8 * i);
    if (xxhash64(data, size - 8, 0) != stored_sum) corrupt("checksum mismatch: the state is corrupt");

    SessionState s;
    const uint32_t arch_len = r.u32("the arch length");
    if (arch_len == 0 || arch_len > kMaxArchBytes) corrupt("arch length " + std::to_string(arch_len) + " is invalid");
    const uint8_t *arch = r.take(arch_len, "the arch name");
    s.model.arch.assign(reinterpret_cast<const char *>(arch), arch_len);
    s.model.n_layer = r.u32("n_layer");
    s.model.n_embd = r.u32("n_embd");
    s.model.n_head_kv = r.u32("n_head_kv");
    s.model.head_dim = r.u32("head_dim");
    s.model.n_vocab = r.u32("n_vocab");
    s.model.weights_hash = r.u64("the weights hash");
    const uint32_t kv_type = r.u32("kv_type");
    if (kv_type > 1) corrupt("kv_type " + std::to_string(kv_type) + " is unknown");
    s.kv_type = static_cast<KvType>(kv_type);
    const uint32_t has_logits = r.u32("has_logits");
    if (has_logits > 1) corrupt("has_logits is " + std::to_string(has_logits) + ", not 0 or 1");
    s.has_logits = has_logits == 1;
    const uint64_t n_past = r.u64("n_past");
    s.rng.seed = r.u64("the rng seed");
    s.rng.draws = r.u64("the rng draw count");
    if (s.rng.draws > kMaxSessionStateDraws) {
        corrupt("the sampler's draw count " + std::to_string(s.rng.draws) + " exceeds the limit 2^32");
    }

    // Sizes are checked against what is left before anything is allocated from them.
    if (n_past > r.left() / sizeof(Token)) corrupt("n_past " + std::to_string(n_past) + " exceeds the data");
    const uint8_t *tokens = r.take(size_t(n_past) * sizeof(Token), "the tokens");
    s.tokens.resize(size_t(n_past));
    for (size_t i = 0; i < s.tokens.size(); ++i) {
        uint32_t v = 0;
        for (int b = 0; b < 4; ++b) v |= uint32_t(tokens[4 * i + b]) << (8 * b);
        const Token t = static_cast<Token>(v);
        if (t < 0 || uint32_t(t) >= s.model.n_vocab) {
            corrupt("token " + std::to_string(i) + " = " + std::to_string(t) + " is outside [0, n_vocab)");
        }
        s.tokens[i] = t;
    }
    if (s.has_logits) {
        if (s.model.n_vocab > r.left() / sizeof(float)) corrupt("truncated: the logits are cut off");
        const uint8_t *logits = r.take(size_t(s.model.n_vocab) * sizeof(float), "the logits");
        s.logits.resize(s.model.n_vocab);
        for (size_t i = 0; i < s.logits.size(); ++i) {
            uint32_t bits = 0;
            for (int b = 0; b < 4; ++b) bits |= uint32_t(logits[4 * i + b]) << (8 * b);
            std::memcpy(&s.logits[i], &bits, 4);
            if (!std::isfinite(s.logits[i])) corrupt("logit " + std::to_string(i) + " is not finite");
        }
    }
    const uint64_t kv_bytes = r.u64("the KV size");
    const size_t expected = kv_state_bytes(s.model, s.kv_type, n_past);
    if (kv_bytes != expected) {
        corrupt("the KV rows take " + std::to_string(kv_bytes) + " bytes, the shape says " +
                std::to_string(expected));
    }
    s.kv_bytes = expected;
    s.kv = r.take(expected, "the KV rows");
    check_kv_finite(s.kv, s.kv_bytes, s.kv_type);
    r.take(8, "the checksum");
    if (r.left() != 0) corrupt("the fields end before the stated size");
    return s;
}

}  // namespace pi
