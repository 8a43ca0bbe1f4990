// Systematic damage to valid files: every truncation, and thousands of random mutations with a fixed seed. The
// reader must never crash (run under ASan/UBSan to catch stray reads) and must answer OK, FORMAT or UNSUPPORTED.
#include "gguf_test_helpers.h"

#include <random>

using namespace gguf_test;
using namespace pi::gguf;

namespace {

// Reads everything a consumer could reach, so that a bad pointer or size shows up here.
uint64_t touch_all(const File &f) {
    uint64_t sum = f.version() + f.alignment() + f.data_offset();
    for (const auto &[key, value] : f.metadata()) {
        sum += key.size() + value.items.size() + value.str.size() + value.u;
        for (const Value &item : value.items) sum += item.u + item.str.size() + item.items.size();
    }
    for (const TensorInfo &t : f.tensors()) {
        const uint8_t *p = f.tensor_data(t);
        for (uint64_t i = 0; i < t.n_bytes; ++i) sum += p[i];
        sum += t.rows() + t.row_elements() + t.n_elements;
    }
    return sum;
}

void check_outcome(const Bytes &bytes, const std::string &what, bool allow_ok) {
    auto copy = std::make_unique<uint8_t[]>(bytes.size() + 1);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    for (bool allow_unsupported : {false, true}) {
        OpenOptions o;
        o.allow_unsupported_types = allow_unsupported;
        try {
            auto f = File::from_memory(copy.get(), bytes.size(), o);
            if (!allow_ok) FAIL(what << ": parsed successfully");
            touch_all(*f);
        } catch (const pi::Error &e) {
            if (e.status() != PI_ERR_FORMAT && e.status() != PI_ERR_UNSUPPORTED) {
                FAIL(what << ": status " << e.status() << ": " << e.what());
            }
            if (!allow_ok && e.status() != PI_ERR_FORMAT) FAIL(what << ": expected FORMAT: " << e.what());
        }
    }
}

Bytes writer_sample() {
    Writer w(3, false, 64);
    w.add_string("general.architecture", "llama");
    w.add("a.nested", make_array(ValueType::ARRAY, {make_array(ValueType::BOOL, {make_bool(true)}),
                                                    make_array(ValueType::BOOL, {})}));
    w.add("a.str", make_array(ValueType::STRING, {make_string("x"), make_string("yz")}));
    w.add("i64", make_int(ValueType::INT64, -9));
    std::vector<uint8_t> q4(18 * 2, 0x5a), f16(2 * 6, 0x11);
    w.add_tensor("q4", TensorType::Q4_0, {32, 2}, q4.data(), q4.size());
    w.add_tensor("f16", TensorType::F16, {3, 2}, f16.data(), f16.size());
    return w.to_bytes();
}

}  // namespace

TEST_CASE("gguf rejects every truncation of valid files with FORMAT", "[gguf][fuzz]") {
    std::vector<std::pair<std::string, Bytes>> samples = {
        {"all_types_v3.gguf", read_bytes(sample_path("all_types_v3.gguf"))},
        {"v2_align64.gguf", read_bytes(sample_path("v2_align64.gguf"))},
        {"writer sample", writer_sample()},
    };
    for (const auto &[name, bytes] : samples) {
        REQUIRE(parse(bytes).status == PI_OK);
        for (size_t len = 0; len < bytes.size(); ++len) {
            check_outcome(Bytes(bytes.begin(), bytes.begin() + static_cast<long>(len)),
                          name + " cut to " + std::to_string(len) + " bytes", false);
        }
    }
}

TEST_CASE("gguf survives random mutations of valid files", "[gguf][fuzz]") {
    const Bytes samples[] = {read_bytes(sample_path("all_types_v3.gguf")),
                             read_bytes(sample_path("unsupported_types.gguf")), writer_sample()};
    std::mt19937_64 rng(20240611);
    // Values that make counts, lengths and offsets interesting: zero, one, limits, sign bits.
    const uint64_t interesting[] = {0, 1, 2, 3, 4, 8, 9, 12, 13, 31, 32, 0x7f, 0x80, 0xff, 0xffff,
                                    0x7fffffff, 0x80000000, 0xffffffff, uint64_t(1) << 32, uint64_t(1) << 62,
                                    uint64_t(1) << 63, UINT64_MAX - 7, UINT64_MAX};
    int n_ok = 0;
    for (int iter = 0; iter < 6000; ++iter) {
        Bytes b = samples[iter % 3];
        int n_mutations = 1 + static_cast<int>(rng() % 4);
        for (int m = 0; m < n_mutations; ++m) {
            size_t pos = rng() % b.size();
            switch (rng() % 4) {
            case 0: b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 1: b[pos] = static_cast<uint8_t>(rng()); break;
            case 2: {  // an interesting little-endian u64 (or its low bytes near the end)
                uint64_t v = interesting[rng() % (sizeof interesting / sizeof interesting[0])];
                for (size_t i = 0; i < 8 && pos + i < b.size(); ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
                break;
            }
            default: b.resize(pos); break;  // truncate
            }
            if (b.empty()) break;
        }
        // An exact-size copy, so that ASan sees any read past the end.
        auto copy = std::make_unique<uint8_t[]>(b.size() + 1);
        if (!b.empty()) std::memcpy(copy.get(), b.data(), b.size());
        try {
            auto f = File::from_memory(copy.get(), b.size());
            touch_all(*f);
            ++n_ok;
        } catch (const pi::Error &e) {
            if (e.status() != PI_ERR_FORMAT && e.status() != PI_ERR_UNSUPPORTED) {
                FAIL("mutation " << iter << ": status " << e.status() << ": " << e.what());
            }
        }
    }
    // Some mutations (in tensor data or padding) leave a valid file; if none did, the test damaged nothing useful.
    CHECK(n_ok > 0);
}
