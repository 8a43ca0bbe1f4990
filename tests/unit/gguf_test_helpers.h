// Helpers shared by the gguf_*_test.cpp files: reading sample files, patching bytes of a written file, decoding
// half floats, and running the reader to get a status and message instead of an exception.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace gguf_test {

using Bytes = std::vector<uint8_t>;

inline std::string sample_path(const std::string &name) { return std::string(PI_TEST_DATA_DIR) + "/gguf/" + name; }

inline Bytes read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file in a fresh temporary directory, removed with it.
class TempDir {
public:
    TempDir() {
        char pattern[] = "/tmp/pi_gguf_test_XXXXXX";
        char *dir = mkdtemp(pattern);
        REQUIRE(dir != nullptr);
        path_ = dir;
    }
    ~TempDir() {
        for (const std::string &f : files_) std::remove(f.c_str());
        rmdir(path_.c_str());
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    std::string file(const std::string &name) {
        files_.push_back(path_ + "/" + name);
        return files_.back();
    }
    std::string write(const std::string &name, const Bytes &bytes) {
        std::string p = file(name);
        std::FILE *f = std::fopen(p.c_str(), "wb");
        REQUIRE(f != nullptr);
        if (!bytes.empty()) REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
        REQUIRE(std::fclose(f) == 0);
        return p;
    }
    const std::string &path() const { return path_; }

private:
    std::string path_;
    std::vector<std::string> files_;
};

// Outcome of one parse: PI_OK or the status and message of the pi::Error.
struct Outcome {
    pi_status status = PI_OK;
    std::string message;
    std::unique_ptr<pi::gguf::File> file;
};

// Parses a private copy of exactly `bytes`, so that ASan sees any read past the end.
inline Outcome parse(const Bytes &bytes, const pi::gguf::OpenOptions &options = {}) {
    Outcome out;
    auto copy = std::make_unique<uint8_t[]>(bytes.size() + 1);  // +1: a valid pointer for empty input
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    try {
        out.file = pi::gguf::File::from_memory(copy.get(), bytes.size(), options);
        out.file.reset();  // `copy` dies here; nothing may keep pointing into it
    } catch (const pi::Error &e) {
        out.status = e.status();
        out.message = e.what();
    }
    return out;
}

inline Outcome open_path(const std::string &path, const pi::gguf::OpenOptions &options = {}) {
    Outcome out;
    try {
        out.file = pi::gguf::File::open(path, options);
    } catch (const pi::Error &e) {
        out.status = e.status();
        out.message = e.what();
    }
    return out;
}

inline void put_u32(Bytes &b, size_t pos, uint32_t v) {
    REQUIRE(pos + 4 <= b.size());
    for (int i = 0; i < 4; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_u64(Bytes &b, size_t pos, uint64_t v) {
    REQUIRE(pos + 8 <= b.size());
    for (int i = 0; i < 8; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint64_t get_u64(const Bytes &b, size_t pos) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[pos + i]) << (8 * i);
    return v;
}

// Position just after the GGUF string `text` (its u64 length followed by its bytes); the string must occur once.
inline size_t after_string(const Bytes &b, const std::string &text) {
    Bytes needle;
    for (int i = 0; i < 8; ++i) needle.push_back(static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i)));
    needle.insert(needle.end(), text.begin(), text.end());
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    REQUIRE(it != b.end());
    REQUIRE(std::search(it + 1, b.end(), needle.begin(), needle.end()) == b.end());
    return static_cast<size_t>(it - b.begin()) + needle.size();
}

// Field positions of the tensor info of tensor `name`.
struct TensorInfoPos {
    size_t n_dims;
    size_t dims;    // first dimension
    size_t type;
    size_t offset;
};
inline TensorInfoPos tensor_info_pos(const Bytes &b, const std::string &name, uint32_t n_dims) {
    TensorInfoPos p;
    p.n_dims = after_string(b, name);
    p.dims = p.n_dims + 4;
    p.type = p.dims + 8 * n_dims;
    p.offset = p.type + 4;
    return p;
}

// IEEE half and bfloat16 to float, written out from the bit layouts (independent of the code under test).
inline float half_to_float(uint16_t h) {
    int sign = (h >> 15) ? -1 : 1;
    int exponent = (h >> 10) & 0x1f;
    int mantissa = h & 0x3ff;
    if (exponent == 0) return static_cast<float>(sign * std::ldexp(mantissa, -24));
    if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
    return static_cast<float>(sign * std::ldexp(mantissa + 1024, exponent - 25));
}
inline float bf16_to_float(uint16_t b) {
    uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline uint16_t le16(const uint8_t *p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline float le_f32(const uint8_t *p) {
    uint32_t bits = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                    (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Dequantizers following the block layouts documented in gguf_types.h.
inline std::vector<float> dequantize_q8_0(const uint8_t *p, size_t n_weights) {
    std::vector<float> out;
    for (size_t b = 0; b < n_weights / 32; ++b, p += 34) {
        float d = half_to_float(le16(p));
        for (int j = 0; j < 32; ++j) out.push_back(d * static_cast<float>(static_cast<int8_t>(p[2 + j])));
    }
    return out;
}
inline std::vector<float> dequantize_q4_0(const uint8_t *p, size_t n_weights) {
    std::vector<float> out;
    for (size_t b = 0; b < n_weights / 32; ++b, p += 18) {
        float d = half_to_float(le16(p));
        float block[32];
        for (int j = 0; j < 16; ++j) {
            block[j] = d * static_cast<float>((p[2 + j] & 0x0f) - 8);
            block[j + 16] = d * static_cast<float>((p[2 + j] >> 4) - 8);
        }
        out.insert(out.end(), block, block + 32);
    }
    return out;
}

}  // namespace gguf_test
