#include "gguf/gguf_parser.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "common/error.h"

namespace pi::gguf {

namespace {

constexpr uint32_t kMagicGguf = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMagicPwri = 0x49525750;  // "PWRI"
constexpr uint64_t kDefaultAlignment = 32;
constexpr const char *kAlignmentKey = "general.alignment";

// Smallest encodings, used to reject counts that the remaining bytes cannot hold before anything is allocated.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                 // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // 1-byte name, n_dims, one dim, type, offset

uint32_t bswap32(uint32_t v) {
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

// Bytes one element of this type takes at least in the file (strings and arrays: their length/count headers).
uint64_t min_encoded_size(ValueType type) {
    switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
        return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
        return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
        return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
    case ValueType::STRING:
        return 8;
    case ValueType::ARRAY:
        return 4 + 8;
    }
    return 1;
}

std::string to_hex(uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    do {
        out.insert(out.begin(), digits[v & 15]);
        v >>= 4;
    } while (v != 0);
    return "0x" + out;
}

class Parser {
public:
    Parser(const uint8_t *bytes, uint64_t size, const std::string &name, const OpenOptions &options)
        : bytes_(bytes), size_(size), name_(name), options_(options) {}

    ParsedGguf run() {
        ParsedGguf out;
        read_header(out);
        read_metadata(out);
        out.alignment = find_alignment(out.metadata);
        read_tensor_infos(out);
        place_data_section(out);
        check_tensor_data(out);
        return out;
    }

private:
    const uint8_t *bytes_;
    uint64_t size_;
    const std::string &name_;
    const OpenOptions &options_;
    uint64_t pos_ = 0;
    uint64_t n_values_ = 0;  // metadata values so far, against options_.max_metadata_values
    uint64_t n_kv_ = 0;      // counts from the header
    uint64_t n_tensors_ = 0;

    // Where we are, for messages: "header", "metadata 3 ('general.name')", "tensor info 2 ('output.weight')", plus
    // the element indices while inside (nested) arrays.
    std::string section_;
    uint64_t element_path_[kMaxArrayDepth] = {};
    int depth_ = 0;

    std::string where() const {
        std::string out = section_;
        if (depth_ > 0) {
            out += " element ";
            for (int i = 0; i < depth_; ++i) out += "[" + std::to_string(element_path_[i]) + "]";
        }
        return out;
    }

    [[noreturn]] void fail(pi_status status, const std::string &message) const {
        pi::fail(status, name_ + ": " + message);
    }
    [[noreturn]] void fail_here(const std::string &problem) const { fail(PI_ERR_FORMAT, where() + ": " + problem); }

    // `what` and `detail` name the field ("key", " length"); two parts so that no string is built unless we fail.
    void need(uint64_t n, const char *what, const char *detail = "") const {
        if (n > size_ - pos_) {
            fail(PI_ERR_FORMAT, "truncated file: " + where() + " " + what + detail + " needs " + std::to_string(n) +
                                    " bytes at offset " + std::to_string(pos_) + ", file has " +
                                    std::to_string(size_));
        }
    }
    uint64_t remaining() const { return size_ - pos_; }

    uint64_t read_le(int n_bytes, const char *what, const char *detail = "") {
        need(static_cast<uint64_t>(n_bytes), what, detail);
        uint64_t v = 0;
        for (int i = 0; i < n_bytes; ++i) v |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
        pos_ += static_cast<uint64_t>(n_bytes);
        return v;
    }
    uint8_t read_u8(const char *what) { return static_cast<uint8_t>(read_le(1, what)); }
    uint16_t read_u16(const char *what) { return static_cast<uint16_t>(read_le(2, what)); }
    uint32_t read_u32(const char *what) { return static_cast<uint32_t>(read_le(4, what)); }
    uint64_t read_u64(const char *what) { return read_le(8, what); }

    std::string read_string(const char *what) {
        uint64_t length = read_le(8, what, " length");
        need(length, what);
        std::string out(reinterpret_cast<const char *>(bytes_ + pos_), static_cast<size_t>(length));
        pos_ += length;
        return out;
    }

    // A count of elements of `min_size` bytes each must fit in the bytes left; checked before any allocation.
    void check_count(uint64_t count, uint64_t min_size, const std::string &what) const {
        if (count > remaining() / min_size) {
            fail_here(what + " count " + std::to_string(count) + " is impossible: at " + std::to_string(min_size) +
                      " bytes or more each they need more than the " + std::to_string(remaining()) +
                      " bytes left in the file (truncated file or corrupt count)");
        }
    }

    void count_value() {
        if (++n_values_ > options_.max_metadata_values) {
            fail_here("more than " + std::to_string(options_.max_metadata_values) +
                      " metadata values in the file (OpenOptions::max_metadata_values)");
        }
    }

    void read_header(ParsedGguf &out) {
        section_ = "header";
        uint32_t magic = read_u32("magic");
        if (magic != kMagicGguf && magic != kMagicPwri) {
            std::string text;
            for (int i = 0; i < 4; ++i) text += static_cast<char>((magic >> (8 * i)) & 0xff);
            fail(PI_ERR_FORMAT, "not a GGUF file: bad magic " + quote_for_message(text) + " (" + to_hex(magic) +
                                    "), expected 'GGUF' or 'PWRI'");
        }
        out.is_pwri = magic == kMagicPwri;
        out.version = read_u32("version");
        if (out.version != 2 && out.version != 3) {
            if (bswap32(out.version) == 2 || bswap32(out.version) == 3) {
                fail(PI_ERR_UNSUPPORTED, "big-endian GGUF file (version " + std::to_string(bswap32(out.version)) +
                                             " byte-swapped) is not supported");
            }
            fail(PI_ERR_UNSUPPORTED, "GGUF version " + std::to_string(out.version) +
                                         " is not supported (only versions 2 and 3)");
        }
        uint64_t n_tensors = read_u64("tensor count");
        uint64_t n_kv = read_u64("metadata count");
        // Cheap early rejection of absurd counts; the exact checks follow where each section starts.
        check_count(n_kv, kMinKvBytes, "metadata");
        check_count(n_tensors, kMinTensorInfoBytes, "tensor");
        out.metadata.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv, 4096)));
        out.tensors.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, 4096)));
        n_kv_ = n_kv;
        n_tensors_ = n_tensors;
    }

    void read_metadata(ParsedGguf &out) {
        for (uint64_t i = 0; i < n_kv_; ++i) {
            section_ = "metadata " + std::to_string(i);
            std::string key = read_string("key");
            section_ += " (" + quote_for_message(key) + ")";
            uint32_t type = read_u32("value type");
            if (!value_type_known(static_cast<ValueType>(type))) {
                fail_here("unknown value type " + std::to_string(type));
            }
            Value value = read_value(static_cast<ValueType>(type), 0);
            out.metadata.emplace_back(std::move(key), std::move(value));
        }
    }

    // `depth`: how many arrays enclose this value.
    Value read_value(ValueType type, int depth) {
        count_value();
        Value v;
        v.type = type;
        switch (type) {
        case ValueType::UINT8: v.u = read_u8("value"); break;
        case ValueType::INT8: v.i = static_cast<int8_t>(read_u8("value")); break;
        case ValueType::UINT16: v.u = read_u16("value"); break;
        case ValueType::INT16: v.i = static_cast<int16_t>(read_u16("value")); break;
        case ValueType::UINT32: v.u = read_u32("value"); break;
        case ValueType::INT32: v.i = static_cast<int32_t>(read_u32("value")); break;
        case ValueType::UINT64: v.u = read_u64("value"); break;
        case ValueType::INT64: v.i = static_cast<int64_t>(read_u64("value")); break;
        case ValueType::FLOAT32: {
            uint32_t bits = read_u32("value");
            float f;
            std::memcpy(&f, &bits, sizeof f);
            v.f = f;
            break;
        }
        case ValueType::FLOAT64: {
            uint64_t bits = read_u64("value");
            std::memcpy(&v.f, &bits, sizeof v.f);
            break;
        }
        case ValueType::BOOL: {
            uint64_t pos = pos_;
            v.u = read_u8("value");
            if (v.u > 1) {
                fail_here("bool value " + std::to_string(v.u) + " at offset " + std::to_string(pos) +
                          " (must be 0 or 1)");
            }
            break;
        }
        case ValueType::STRING: v.str = read_string("string"); break;
        case ValueType::ARRAY: read_array(v, depth + 1); break;
        }
        return v;
    }

    // `depth`: 1 for an array directly under a key.
    void read_array(Value &v, int depth) {
        if (depth > kMaxArrayDepth) {
            fail_here("arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels (limit)");
        }
        uint32_t elem = read_u32("array element type");
        if (!value_type_known(static_cast<ValueType>(elem))) {
            fail_here("unknown array element type " + std::to_string(elem));
        }
        v.elem_type = static_cast<ValueType>(elem);
        uint64_t count = read_u64("array count");
        check_count(count, min_encoded_size(v.elem_type), "array of " + value_type_name(v.elem_type) + ",");
        v.items.reserve(static_cast<size_t>(std::min<uint64_t>(count, 65536)));
        for (uint64_t j = 0; j < count; ++j) {
            element_path_[depth_++] = j;
            v.items.push_back(read_value(v.elem_type, depth));
            --depth_;
        }
    }

    uint64_t find_alignment(const std::vector<std::pair<std::string, Value>> &metadata) const {
        for (const auto &[key, value] : metadata) {
            if (key != kAlignmentKey) continue;
            if (value.type != ValueType::UINT32) {
                fail(PI_ERR_FORMAT, std::string(kAlignmentKey) + " has type " + value_type_name(value.type) +
                                        ", expected UINT32");
            }
            if (value.u == 0 || (value.u & (value.u - 1)) != 0) {
                fail(PI_ERR_FORMAT, std::string(kAlignmentKey) + " is " + std::to_string(value.u) +
                                        ", expected a non-zero power of two");
            }
            return value.u;
        }
        return kDefaultAlignment;
    }

    void read_tensor_infos(ParsedGguf &out) {
        section_ = "tensor infos";
        check_count(n_tensors_, kMinTensorInfoBytes, "tensor");
        for (uint64_t i = 0; i < n_tensors_; ++i) {
            section_ = "tensor info " + std::to_string(i);
            TensorInfo t;
            t.name = read_string("name");
            if (t.name.empty()) fail_here("empty tensor name");
            section_ += " (" + quote_for_message(t.name) + ")";

            uint32_t n_dims = read_u32("n_dims");
            if (n_dims == 0 || n_dims > kMaxDims) {
                fail_here("n_dims " + std::to_string(n_dims) + " is outside 1.." + std::to_string(kMaxDims) +
                          " (ggml's GGML_MAX_DIMS)");
            }
            t.n_elements = 1;
            for (uint32_t d = 0; d < n_dims; ++d) {
                uint64_t dim = read_u64("dimension");
                if (dim == 0) fail_here("dimension " + std::to_string(d) + " is 0");
                t.dims.push_back(dim);
                if (__builtin_mul_overflow(t.n_elements, dim, &t.n_elements)) {
                    fail_here("dimensions " + dims_text(t.dims) + " overflow a 64-bit element count");
                }
            }

            uint32_t type_id = read_u32("type");
            t.type = static_cast<TensorType>(type_id);
            if (!tensor_type_known(t.type)) fail_here("unknown tensor type id " + std::to_string(type_id));
            if (!tensor_type_supported(t.type) && !options_.allow_unsupported_types) {
                fail(PI_ERR_UNSUPPORTED, "tensor " + quote_for_message(t.name) + " has type " +
                                             tensor_type_name(t.type) +
                                             ", which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)");
            }
            uint64_t block_weights = tensor_type_block_weights(t.type);
            if (t.dims[0] % block_weights != 0) {
                fail_here("row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                          tensor_type_name(t.type) + " block size " + std::to_string(block_weights));
            }
            if (__builtin_mul_overflow(t.n_elements / block_weights, tensor_type_block_bytes(t.type), &t.n_bytes)) {
                fail_here("byte size of " + dims_text(t.dims) + " " + tensor_type_name(t.type) +
                          " overflows 64 bits");
            }

            t.offset = read_u64("data offset");
            if (t.offset % out.alignment != 0) {
                fail_here("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                          std::to_string(out.alignment));
            }
            out.tensors.push_back(std::move(t));
        }
    }

    static std::string dims_text(const std::vector<uint64_t> &dims) {
        std::string out;
        for (size_t i = 0; i < dims.size(); ++i) out += (i ? " x " : "") + std::to_string(dims[i]);
        return out;
    }

    void place_data_section(ParsedGguf &out) {
        section_ = "data section";
        uint64_t pad = (out.alignment - pos_ % out.alignment) % out.alignment;
        out.data_offset = pos_ + pad;
        // A file without tensors may stop right after its metadata (vocabulary-only files do), so the padding is
        // only required when there is data behind it.
        if (!out.tensors.empty()) need(pad, "padding");
    }

    // Each tensor's bytes plus its padding lie inside the file, and no two tensors share bytes.
    void check_tensor_data(const ParsedGguf &out) {
        uint64_t data_size = size_ - std::min(size_, out.data_offset);
        for (const TensorInfo &t : out.tensors) {
            uint64_t padded = t.n_bytes + (out.alignment - t.n_bytes % out.alignment) % out.alignment;
            // n_bytes <= size has not been checked yet, so guard the additions.
            bool inside = padded >= t.n_bytes && t.offset <= data_size && padded <= data_size - t.offset;
            if (!inside) {
                std::string extent = padded >= t.n_bytes ? std::to_string(padded) + " with padding"
                                                         : "overflowing 64 bits with padding";
                fail(PI_ERR_FORMAT, "tensor " + quote_for_message(t.name) + ": data at offset " +
                                        std::to_string(t.offset) + " of the data section (which starts at " +
                                        std::to_string(out.data_offset) + "), " + std::to_string(t.n_bytes) +
                                        " bytes (" + extent + "), extends past the end of the file (" +
                                        std::to_string(size_) + " bytes): truncated file or bad offset");
            }
        }
        std::vector<size_t> order(out.tensors.size());
        std::iota(order.begin(), order.end(), size_t{0});
        std::sort(order.begin(), order.end(),
                  [&](size_t a, size_t b) { return out.tensors[a].offset < out.tensors[b].offset; });
        for (size_t k = 1; k < order.size(); ++k) {
            const TensorInfo &prev = out.tensors[order[k - 1]];
            const TensorInfo &cur = out.tensors[order[k]];
            if (prev.offset + prev.n_bytes > cur.offset) {
                fail(PI_ERR_FORMAT, "tensors " + quote_for_message(prev.name) + " (data [" +
                                        std::to_string(prev.offset) + ", " +
                                        std::to_string(prev.offset + prev.n_bytes) + ")) and " +
                                        quote_for_message(cur.name) + " (data [" + std::to_string(cur.offset) +
                                        ", " + std::to_string(cur.offset + cur.n_bytes) + ")) overlap");
            }
        }
    }
};

}  // namespace

ParsedGguf parse_gguf(const uint8_t *bytes, uint64_t size, const std::string &name, const OpenOptions &options) {
    return Parser(bytes, size, name, options).run();
}

std::string quote_for_message(std::string_view text) {
    constexpr size_t kMaxShown = 64;
    static const char digits[] = "0123456789abcdef";
    std::string out = "'";
    for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    if (text.size() > kMaxShown) out += "...";
    out += "'";
    return out;
}

}  // namespace pi::gguf
