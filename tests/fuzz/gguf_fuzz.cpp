// libFuzzer target for the GGUF reader: parses the input as a GGUF file (with and without unsupported tensor types
// allowed) and reads everything a model loader could reach. A crash, a sanitizer report, or a pi::Error whose status
// is not FORMAT/UNSUPPORTED (for getters: FORMAT) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "gguf/gguf_file.h"

namespace {

using pi::gguf::File;
using pi::gguf::TensorInfo;
using pi::gguf::Value;

[[noreturn]] void finding(const char *what, const pi::Error &e) {
    std::fprintf(stderr, "gguf_fuzz: %s: status %d: %s\n", what, static_cast<int>(e.status()), e.what());
    std::abort();
}

// Getters throw FORMAT when a key holds another type; anything else is a bug.
template <typename Fn>
void getter(Fn &&fn, uint64_t &sink) {
    try {
        sink += static_cast<uint64_t>(fn());
    } catch (const pi::Error &e) {
        if (e.status() != PI_ERR_FORMAT) finding("getter", e);
    }
}

uint64_t touch_value(const Value &v, int depth) {
    uint64_t sum = static_cast<uint64_t>(v.type) + v.u + static_cast<uint64_t>(v.i) + v.str.size();
    if (depth > pi::gguf::kMaxArrayDepth) std::abort();  // the reader promised to refuse this
    for (const Value &item : v.items) sum += touch_value(item, depth + 1);
    return sum;
}

uint64_t touch(const File &f) {
    uint64_t sum = f.version() + f.alignment() + f.data_offset() + f.size();
    for (const auto &entry : f.metadata()) {
        const std::string &key = entry.first;  // a plain reference: clang 14 cannot capture structured bindings
        sum += touch_value(entry.second, 0);
        if (f.find(key) == nullptr) std::abort();
        getter([&] { return f.get_string_or(key, "").size(); }, sum);
        getter([&] { return f.get_uint_or(key, 0); }, sum);
        getter([&] { return f.get_int_or(key, 0); }, sum);
        getter([&] { return f.get_float_or(key, 0.0) != 0.0; }, sum);
        getter([&] { return f.get_bool_or(key, false); }, sum);
        getter([&] { return f.get_string_array(key).has_value(); }, sum);
        getter([&] { return f.get_float_array(key).has_value(); }, sum);
        getter([&] { return f.get_int_array(key).has_value(); }, sum);
    }
    for (const TensorInfo &t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) std::abort();
        const uint8_t *p = f.tensor_data(t);
        for (uint64_t i = 0; i < t.n_bytes; ++i) sum += p[i];
        sum += t.rows() + t.row_elements() + t.n_elements;
    }
    return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static volatile uint64_t sink;
    for (bool allow_unsupported : {false, true}) {
        pi::gguf::OpenOptions options;
        options.allow_unsupported_types = allow_unsupported;
        try {
            auto f = File::from_memory(data, size, options);
            sink = sink + touch(*f);
        } catch (const pi::Error &e) {
            if (e.status() != PI_ERR_FORMAT && e.status() != PI_ERR_UNSUPPORTED) finding("from_memory", e);
        }
    }
    return 0;
}
