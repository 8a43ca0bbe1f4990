// Helpers shared by the cpu_*_test.cpp files: independent reference decoders (double precision, written from the
// format definitions, not from the kernels' code), random weight matrices of every type with their exact values,
// the reference activation quantization, and the list of ISA levels this machine can run.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/numeric.h"
#include "backends/cpu/weight_type.h"
#include "common/error.h"

namespace cpu_test {

using pi::cpu::IsaLevel;
using pi::cpu::WeightMatrix;
using pi::cpu::WeightType;

inline const std::vector<WeightType> &all_types() {
    static const std::vector<WeightType> types = {WeightType::F32, WeightType::F16, WeightType::BF16, WeightType::Q8_0,
                                                  WeightType::Q4_0};
    return types;
}

// Every level up to the best this CPU has (tests force each one explicitly).
inline std::vector<IsaLevel> available_levels() {
    std::vector<IsaLevel> levels;
    for (IsaLevel l : {IsaLevel::Scalar, IsaLevel::Avx2, IsaLevel::Avx512}) {
        if (l <= pi::cpu::best_isa_level()) levels.push_back(l);
    }
    return levels;
}

// IEEE binary16 value from its definition: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
inline double half_value(uint16_t h) {
    const int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0x1f)
        v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (e == 0)
        v = std::ldexp(static_cast<double>(m), -24);
    else
        v = std::ldexp(static_cast<double>(1024 + m), e - 25);
    return sign ? -v : v;
}

inline double bf16_value(uint16_t b) {
    const int sign = b >> 15, e = (b >> 7) & 0xff, m = b & 0x7f;
    double v;
    if (e == 0xff)
        v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (e == 0)
        v = std::ldexp(static_cast<double>(m), -133);
    else
        v = std::ldexp(static_cast<double>(128 + m), e - 134);
    return sign ? -v : v;
}

// Nearest binary16 to a finite f, ties to the even code, overflow (>= 65520) to inf: a binary search over the
// sorted positive half values, sharing no code with numeric.h.
inline uint16_t ref_fp16(float f) {
    static const std::vector<double> positive = [] {
        std::vector<double> v;
        for (uint32_t h = 0; h < 0x7c00; ++h) v.push_back(half_value(static_cast<uint16_t>(h)));
        return v;
    }();
    const double a = std::fabs(static_cast<double>(f));
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    if (a >= 65520.0) return sign | 0x7c00;
    const size_t hi = static_cast<size_t>(std::lower_bound(positive.begin(), positive.end(), a) - positive.begin());
    if (hi == 0) return sign;
    if (hi == positive.size()) return sign | 0x7bff;
    const size_t lo = hi - 1;
    const double dlo = a - positive[lo], dhi = positive[hi] - a;
    size_t pick = dlo < dhi ? lo : (dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi));
    return static_cast<uint16_t>(sign | pick);
}

// Nearest bf16 to a finite f, ties to even.
inline uint16_t ref_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t down = static_cast<uint16_t>(bits >> 16);
    const uint16_t up = static_cast<uint16_t>(down + 1);
    const double a = std::fabs(static_cast<double>(f));
    // Above the largest bf16 the next step up is 2^128 (rounding with an unbounded exponent), which overflows to inf.
    const double up_value = (up & 0x7fff) == 0x7f80 ? std::ldexp(1.0, 128) : std::fabs(bf16_value(up));
    const double dd = a - std::fabs(bf16_value(down)), du = up_value - a;
    if (dd < du) return down;
    if (du < dd) return up;
    return (down & 1) ? up : down;
}

// A random weight matrix with its exact values. For Q8_0/Q4_0 also the integer codes (q, or nibble - 8) and the
// block scales, for the integer-dot reference.
struct TestMatrix {
    std::vector<uint8_t> bytes;
    WeightMatrix w;
    std::vector<double> value;  // [row][col], exact
    std::vector<int> code;      // quantized types: [row][col]
    std::vector<double> scale;  // quantized types: [row][block]

    double at(size_t r, size_t c) const { return value[r * w.n_cols + c]; }
};

// Rows of `cols` weights; row_pad extra bytes between rows (a strided view) when non-zero.
inline TestMatrix make_matrix(WeightType type, size_t rows, size_t cols, uint32_t seed, size_t row_pad = 0) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> scale_dist(0.001f, 0.05f);
    TestMatrix m;
    const size_t row_bytes = pi::cpu::weight_row_bytes(type, cols);
    const size_t stride = row_bytes + row_pad;
    // Exactly the bytes of the view (so ASan sees any read past the last row); 0xEE in the row padding of strided
    // views, so a kernel reading it would go wrong.
    m.bytes.assign(rows == 0 ? 0 : (rows - 1) * stride + row_bytes, 0xEE);
    m.w.data = m.bytes.data();
    m.w.type = type;
    m.w.n_rows = rows;
    m.w.n_cols = cols;
    m.w.row_stride = stride;
    m.value.resize(rows * cols);
    const bool quant = pi::cpu::weight_type_is_quantized(type);
    if (quant) {
        m.code.resize(rows * cols);
        m.scale.resize(rows * cols / 32);
    }
    for (size_t r = 0; r < rows; ++r) {
        uint8_t *row = m.bytes.data() + r * stride;
        for (size_t c = 0; c < cols; ++c) {
            const float v = normal(rng);
            switch (type) {
                case WeightType::F32:
                    std::memcpy(row + 4 * c, &v, 4);
                    m.value[r * cols + c] = v;
                    break;
                case WeightType::F16: {
                    const uint16_t h = ref_fp16(v);
                    std::memcpy(row + 2 * c, &h, 2);
                    m.value[r * cols + c] = half_value(h);
                    break;
                }
                case WeightType::BF16: {
                    const uint16_t b = ref_bf16(v);
                    std::memcpy(row + 2 * c, &b, 2);
                    m.value[r * cols + c] = bf16_value(b);
                    break;
                }
                default: break;
            }
        }
        if (!quant) continue;
        for (size_t b = 0; b < cols / 32; ++b) {
            const uint16_t d = ref_fp16(scale_dist(rng));
            m.scale[r * (cols / 32) + b] = half_value(d);
            if (type == WeightType::Q8_0) {
                uint8_t *blk = row + b * 34;
                std::memcpy(blk, &d, 2);
                for (int j = 0; j < 32; ++j) {
                    // The full int8 range, -128 included (ggml never writes it, a file may).
                    const int q = static_cast<int>(rng() % 256) - 128;
                    blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
                    m.code[r * cols + b * 32 + j] = q;
                }
            } else {
                uint8_t *blk = row + b * 18;
                std::memcpy(blk, &d, 2);
                for (int j = 0; j < 16; ++j) {
                    const int lo = static_cast<int>(rng() % 16), hi = static_cast<int>(rng() % 16);
                    blk[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
                    m.code[r * cols + b * 32 + j] = lo - 8;
                    m.code[r * cols + b * 32 + j + 16] = hi - 8;
                }
            }
            for (int j = 0; j < 32; ++j) {
                m.value[r * cols + b * 32 + j] = half_value(d) * m.code[r * cols + b * 32 + j];
            }
        }
    }
    return m;
}

inline std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> x(n);
    for (float &v : x) v = normal(rng);
    return x;
}

// The documented activation rounding, restated: per 32 values d = amax / 127 (binary32), id = 1 / d,
// q = round-half-even(x * id); the block's activation scale is the binary16 nearest d.
struct RefQ8 {
    std::vector<int> q;
    std::vector<double> d;  // value of the fp16 scale per block
    std::vector<uint16_t> d16;
};

inline RefQ8 ref_quantize(const float *x, size_t n) {
    RefQ8 r;
    r.q.resize(n);
    for (size_t b = 0; b < n / 32; ++b) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; ++j) {
            const float p = x[b * 32 + j] * id;
            // Half to even by hand: floor, then compare the remainder with 1/2.
            const float fl = std::floor(p);
            const float rem = p - fl;
            float q = rem > 0.5f ? fl + 1 : (rem < 0.5f ? fl : (std::fmod(fl, 2.0f) == 0.0f ? fl : fl + 1));
            r.q[b * 32 + j] = static_cast<int>(q);
        }
        r.d16.push_back(ref_fp16(d));
        r.d.push_back(half_value(r.d16.back()));
    }
    return r;
}

// Reference dot of row r with x. Float weights: sum of exact weight * x in double. Quantized: the integer formula,
// sum over blocks of (sum q_w * q_x) * d_w * d_x, in double. abs_sum receives the sum of the magnitudes of the terms
// (the scale of float rounding errors).
inline double ref_dot(const TestMatrix &m, size_t r, const float *x, const RefQ8 *xq, double *abs_sum) {
    double s = 0.0, a = 0.0;
    const size_t n = m.w.n_cols;
    if (pi::cpu::weight_type_is_quantized(m.w.type)) {
        for (size_t b = 0; b < n / 32; ++b) {
            long long isum = 0;
            for (int j = 0; j < 32; ++j) isum += static_cast<long long>(m.code[r * n + b * 32 + j]) * xq->q[b * 32 + j];
            const double term = static_cast<double>(isum) * m.scale[r * (n / 32) + b] * xq->d[b];
            s += term;
            a += std::fabs(term);
        }
    } else {
        for (size_t c = 0; c < n; ++c) {
            const double term = m.at(r, c) * static_cast<double>(x[c]);
            s += term;
            a += std::fabs(term);
        }
    }
    if (abs_sum) *abs_sum = a;
    return s;
}

inline double relative_l2(const std::vector<double> &ref, const std::vector<float> &got) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (got[i] - ref[i]) * (got[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// `bytes` readable bytes that end exactly where an inaccessible page begins: a kernel that reads past them faults.
class GuardedBytes {
public:
    explicit GuardedBytes(size_t bytes) {
        page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        data_pages_ = (bytes + page_ - 1) / page_;
        base_ = mmap(nullptr, (data_pages_ + 1) * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(base_ != MAP_FAILED);
        REQUIRE(mprotect(static_cast<uint8_t *>(base_) + data_pages_ * page_, page_, PROT_NONE) == 0);
        data_ = static_cast<uint8_t *>(base_) + data_pages_ * page_ - bytes;
    }
    ~GuardedBytes() { munmap(base_, (data_pages_ + 1) * page_); }
    GuardedBytes(const GuardedBytes &) = delete;
    GuardedBytes &operator=(const GuardedBytes &) = delete;
    uint8_t *data() { return data_; }

private:
    size_t page_ = 0, data_pages_ = 0;
    void *base_ = nullptr;
    uint8_t *data_ = nullptr;
};

}  // namespace cpu_test
