#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace pi::gguf {

namespace {

constexpr const char *kAlignmentKey = "general.alignment";

void put_le(std::vector<uint8_t> &out, uint64_t v, int n_bytes) {
    for (int i = 0; i < n_bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_string(std::vector<uint8_t> &out, const std::string &s) {
    put_le(out, s.size(), 8);
    out.insert(out.end(), s.begin(), s.end());
}

void pad_to(std::vector<uint8_t> &out, uint64_t alignment) {
    while (out.size() % alignment != 0) out.push_back(0);
}

[[noreturn]] void bad_value(const std::string &key, const std::string &problem) {
    fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: metadata '" + key + "': " + problem);
}

void check_unsigned(const std::string &key, uint64_t v, int bits) {
    if (bits < 64 && v >> bits != 0) {
        bad_value(key, std::to_string(v) + " does not fit " + std::to_string(bits) + " bits");
    }
}

void check_signed(const std::string &key, int64_t v, int bits) {
    int64_t lo = bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t(1) << (bits - 1));
    int64_t hi = bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t(1) << (bits - 1)) - 1;
    if (v < lo || v > hi) bad_value(key, std::to_string(v) + " does not fit " + std::to_string(bits) + " bits");
}

// The value's payload, without its type tag (arrays carry their element type and count).
void put_value(std::vector<uint8_t> &out, const std::string &key, const Value &v) {
    switch (v.type) {
    case ValueType::UINT8: check_unsigned(key, v.u, 8); put_le(out, v.u, 1); break;
    case ValueType::UINT16: check_unsigned(key, v.u, 16); put_le(out, v.u, 2); break;
    case ValueType::UINT32: check_unsigned(key, v.u, 32); put_le(out, v.u, 4); break;
    case ValueType::UINT64: put_le(out, v.u, 8); break;
    case ValueType::INT8: check_signed(key, v.i, 8); put_le(out, static_cast<uint64_t>(v.i), 1); break;
    case ValueType::INT16: check_signed(key, v.i, 16); put_le(out, static_cast<uint64_t>(v.i), 2); break;
    case ValueType::INT32: check_signed(key, v.i, 32); put_le(out, static_cast<uint64_t>(v.i), 4); break;
    case ValueType::INT64: put_le(out, static_cast<uint64_t>(v.i), 8); break;
    case ValueType::FLOAT32: {
        float f = static_cast<float>(v.f);
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        put_le(out, bits, 4);
        break;
    }
    case ValueType::FLOAT64: {
        uint64_t bits;
        std::memcpy(&bits, &v.f, sizeof bits);
        put_le(out, bits, 8);
        break;
    }
    case ValueType::BOOL:
        if (v.u > 1) bad_value(key, "bool value " + std::to_string(v.u));
        put_le(out, v.u, 1);
        break;
    case ValueType::STRING: put_string(out, v.str); break;
    case ValueType::ARRAY:
        if (!value_type_known(v.elem_type)) bad_value(key, "unknown array element type");
        put_le(out, static_cast<uint32_t>(v.elem_type), 4);
        put_le(out, v.items.size(), 8);
        for (const Value &item : v.items) {
            if (item.type != v.elem_type) {
                bad_value(key, "array of " + value_type_name(v.elem_type) + " holds a " +
                                   value_type_name(item.type));
            }
            put_value(out, key, item);
        }
        break;
    default: bad_value(key, "unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
    }
}

}  // namespace

Writer::Writer(uint32_t version, bool pwri_magic, uint64_t alignment)
    : version_(version), pwri_magic_(pwri_magic), alignment_(alignment) {
    if (version != 2 && version != 3) {
        fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: version " + std::to_string(version) + " (only 2 and 3)");
    }
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > std::numeric_limits<uint32_t>::max()) {
        fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: alignment " + std::to_string(alignment) +
                                          " is not a power of two that fits 32 bits");
    }
}

void Writer::add(const std::string &key, const Value &value) { metadata_.emplace_back(key, value); }
void Writer::add_string(const std::string &key, const std::string &value) { add(key, make_string(value)); }
void Writer::add_uint32(const std::string &key, uint32_t value) { add(key, make_uint32(value)); }
void Writer::add_float32(const std::string &key, float value) { add(key, make_float32(value)); }

void Writer::add_tensor(const std::string &name, TensorType type, const std::vector<uint64_t> &dims,
                        const void *data, size_t n_bytes) {
    if (!tensor_type_known(type)) {
        fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: tensor '" + name + "': unknown type " + tensor_type_name(type));
    }
    uint64_t n_elements = 1;
    for (uint64_t d : dims) {
        if (__builtin_mul_overflow(n_elements, d, &n_elements)) {
            fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: tensor '" + name + "': dims overflow");
        }
    }
    uint64_t block = tensor_type_block_weights(type);
    if (dims.empty() || dims[0] % block != 0 ||
        n_elements / block * tensor_type_block_bytes(type) != static_cast<uint64_t>(n_bytes)) {
        fail(PI_ERR_INVALID_ARGUMENT, "gguf writer: tensor '" + name + "': " + std::to_string(n_bytes) +
                                          " bytes do not match its dims and type " + tensor_type_name(type));
    }
    const uint8_t *p = static_cast<const uint8_t *>(data);
    tensors_.push_back(PendingTensor{name, type, dims, std::vector<uint8_t>(p, p + n_bytes)});
}

std::vector<uint8_t> Writer::to_bytes() const {
    bool add_alignment_key = alignment_ != 32;
    for (const auto &kv : metadata_) {
        if (kv.first == kAlignmentKey) add_alignment_key = false;
    }

    std::vector<uint8_t> out;
    put_le(out, pwri_magic_ ? 0x49525750u : 0x46554747u, 4);  // "PWRI" / "GGUF" as little-endian u32
    put_le(out, version_, 4);
    put_le(out, tensors_.size(), 8);
    put_le(out, metadata_.size() + (add_alignment_key ? 1 : 0), 8);

    for (const auto &[key, value] : metadata_) {
        put_string(out, key);
        put_le(out, static_cast<uint32_t>(value.type), 4);
        put_value(out, key, value);
    }
    if (add_alignment_key) {
        put_string(out, kAlignmentKey);
        put_le(out, static_cast<uint32_t>(ValueType::UINT32), 4);
        put_le(out, alignment_, 4);
    }

    uint64_t offset = 0;
    for (const PendingTensor &t : tensors_) {
        put_string(out, t.name);
        put_le(out, t.dims.size(), 4);
        for (uint64_t d : t.dims) put_le(out, d, 8);
        put_le(out, static_cast<uint32_t>(t.type), 4);
        put_le(out, offset, 8);
        offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
    }
    if (!tensors_.empty()) {
        pad_to(out, alignment_);
        for (const PendingTensor &t : tensors_) {
            out.insert(out.end(), t.data.begin(), t.data.end());
            pad_to(out, alignment_);
        }
    }
    return out;
}

void Writer::write_file(const std::string &path) const {
    std::vector<uint8_t> bytes = to_bytes();
    std::FILE *f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) fail(PI_ERR_IO, path + ": cannot create: " + std::strerror(errno));
    size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
    int write_errno = errno;
    bool closed = std::fclose(f) == 0;
    if (written != bytes.size() || !closed) {
        fail(PI_ERR_IO, path + ": write failed: " + std::strerror(written != bytes.size() ? write_errno : errno));
    }
}

Value make_uint32(uint32_t v) { return make_uint(ValueType::UINT32, v); }

Value make_float32(float v) {
    Value out;
    out.type = ValueType::FLOAT32;
    out.f = v;
    return out;
}

Value make_float64(double v) {
    Value out;
    out.type = ValueType::FLOAT64;
    out.f = v;
    return out;
}

Value make_string(std::string v) {
    Value out;
    out.type = ValueType::STRING;
    out.str = std::move(v);
    return out;
}

Value make_array(ValueType elem_type, std::vector<Value> items) {
    Value out;
    out.type = ValueType::ARRAY;
    out.elem_type = elem_type;
    out.items = std::move(items);
    return out;
}

Value make_uint(ValueType type, uint64_t v) {
    Value out;
    out.type = type;
    out.u = v;
    return out;
}

Value make_int(ValueType type, int64_t v) {
    Value out;
    out.type = type;
    out.i = v;
    return out;
}

Value make_bool(bool v) {
    Value out;
    out.type = ValueType::BOOL;
    out.u = v ? 1 : 0;
    return out;
}

}  // namespace pi::gguf
