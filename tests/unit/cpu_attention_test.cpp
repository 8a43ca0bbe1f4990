// attend_head, the decode attention of one query head over a KV cache, at every ISA level this CPU runs, against a
// softmax written from the definition in double precision; cache rows in F16 and binary32, strided with an offset
// (one head's slice of a row holding several heads), head sizes that are and are not multiples of 16, and position
// counts around the AVX-512 kernel's blocks of four.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_test_helpers.h"

#include "backends/cpu/layer_math.h"

using namespace cpu_test;
using pi::cpu::attend_head;

namespace {

struct Cache {
    size_t stride = 0, offset = 0;
    std::vector<uint16_t> k16, v16;
    std::vector<float> k32, v32;

    // Element `offset + i` of row p, as the kernel reads it.
    double key(bool f16, uint32_t p, uint32_t i) const {
        const size_t at = p * stride + offset + i;
        return f16 ? half_value(k16[at]) : double(k32[at]);
    }
    double value(bool f16, uint32_t p, uint32_t i) const {
        const size_t at = p * stride + offset + i;
        return f16 ? half_value(v16[at]) : double(v32[at]);
    }
};

Cache make_cache(uint32_t n_pos, uint32_t head_dim, uint32_t seed) {
    Cache c;
    c.offset = head_dim + 3;  // the head's slice starts mid-row
    c.stride = c.offset + head_dim + 5;
    const std::vector<float> k = random_vector(n_pos * c.stride, seed, 1.0f);
    const std::vector<float> v = random_vector(n_pos * c.stride, seed + 1, 1.0f);
    c.k32 = k;
    c.v32 = v;
    for (float f : k) c.k16.push_back(ref_fp16(f));
    for (float f : v) c.v16.push_back(ref_fp16(f));
    return c;
}

std::vector<double> reference(const Cache &c, bool f16, const std::vector<float> &q, uint32_t head_dim, uint32_t n_pos,
                              double scale) {
    std::vector<double> s(n_pos), out(head_dim, 0.0);
    double max_s = -INFINITY, sum = 0.0;
    for (uint32_t p = 0; p < n_pos; ++p) {
        double d = 0.0;
        for (uint32_t i = 0; i < head_dim; ++i) d += double(q[i]) * c.key(f16, p, i);
        s[p] = d * scale;
        max_s = std::max(max_s, s[p]);
    }
    for (double &x : s) sum += (x = std::exp(x - max_s));
    for (uint32_t p = 0; p < n_pos; ++p) {
        for (uint32_t i = 0; i < head_dim; ++i) out[i] += s[p] / sum * c.value(f16, p, i);
    }
    return out;
}

}  // namespace

TEST_CASE("attend_head matches the double softmax at every level, F16 and F32 rows", "[cpu][attention]") {
    // 72: a head dimension the AVX-512 level's head-major kernel has no instance for (its position-major form).
    for (uint32_t head_dim : {16u, 72u, 80u, 128u}) {
        for (uint32_t n_pos : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u, 33u, 97u}) {
            const Cache c = make_cache(n_pos, head_dim, 7 * head_dim + n_pos);
            const std::vector<float> q = random_vector(head_dim, 3 * n_pos + 1, 0.5f);
            const float scale = 1.0f / std::sqrt(float(head_dim));
            for (bool f16 : {true, false}) {
                const void *keys = f16 ? static_cast<const void *>(c.k16.data()) : c.k32.data();
                const void *values = f16 ? static_cast<const void *>(c.v16.data()) : c.v32.data();
                const std::vector<double> ref = reference(c, f16, q, head_dim, n_pos, scale);
                for (IsaLevel level : available_levels()) {
                    INFO("head_dim " << head_dim << " n_pos " << n_pos << (f16 ? " F16" : " F32") << " level "
                                     << int(level));
                    std::vector<float> scores(n_pos), out(head_dim + 1, 1234.0f), again(head_dim + 1, 1234.0f);
                    attend_head(keys, values, f16, c.stride, c.offset, head_dim, q.data(), n_pos, scale, scores.data(),
                                out.data(), level);
                    out.pop_back();
                    CHECK(relative_l2(ref, out) < 1e-5);
                    // Deterministic, and nothing written past head_dim.
                    attend_head(keys, values, f16, c.stride, c.offset, head_dim, q.data(), n_pos, scale, scores.data(),
                                again.data(), level);
                    CHECK(again.back() == 1234.0f);
                    again.pop_back();
                    CHECK(same_bits(out, again));
                }
            }
        }
    }
}

TEST_CASE("attend_heads gives each head of a range the bits of attend_head, GQA groups included", "[cpu][attention]") {
    // A cache row of n_kv heads, the heads' slices from element `lead` on (so the kv range starts mid-row).
    struct Shape {
        uint32_t head_dim, n_kv, group;
    };
    for (const Shape sh :
         {Shape{128, 4, 1}, Shape{80, 3, 2}, Shape{16, 2, 4}, Shape{64, 8, 1}, Shape{128, 2, 3}, Shape{72, 2, 2}}) {
        const uint32_t n_head = sh.n_kv * sh.group, lead = 5;
        const size_t stride = lead + size_t(sh.n_kv) * sh.head_dim + 3;
        for (uint32_t n_pos : {1u, 3u, 6u, 37u}) {
            const std::vector<float> k = random_vector(n_pos * stride, 11 * n_pos + sh.head_dim, 1.0f);
            const std::vector<float> v = random_vector(n_pos * stride, 13 * n_pos + sh.head_dim, 1.0f);
            std::vector<uint16_t> k16, v16;
            for (float f : k) k16.push_back(ref_fp16(f));
            for (float f : v) v16.push_back(ref_fp16(f));
            const std::vector<float> q = random_vector(size_t(n_head) * sh.head_dim, 5 * n_pos + 1, 0.5f);
            const float scale = 1.0f / std::sqrt(float(sh.head_dim));
            for (bool f16 : {true, false}) {
                const void *keys = f16 ? static_cast<const void *>(k16.data()) : k.data();
                const void *values = f16 ? static_cast<const void *>(v16.data()) : v.data();
                for (IsaLevel level : available_levels()) {
                    // One head at a time: the reference bits.
                    std::vector<float> one(size_t(n_head) * sh.head_dim), scores(n_pos);
                    for (uint32_t h = 0; h < n_head; ++h) {
                        attend_head(keys, values, f16, stride, lead + size_t(h / sh.group) * sh.head_dim,
                                    sh.head_dim, &q[size_t(h) * sh.head_dim], n_pos, scale, scores.data(),
                                    &one[size_t(h) * sh.head_dim], level);
                    }
                    // Ranges that start and end inside groups, the whole set, and a single head.
                    const uint32_t ranges[][2] = {{0, n_head}, {1, n_head}, {0, 1}, {n_head / 2, n_head}, {1, 2}};
                    for (const auto &r : ranges) {
                        const uint32_t h0 = r[0], h1 = std::max(r[0] + 1, r[1]);
                        if (h1 > n_head) continue;
                        INFO("head_dim " << sh.head_dim << " group " << sh.group << " n_pos " << n_pos
                                         << (f16 ? " F16" : " F32") << " level " << int(level) << " heads " << h0
                                         << ".." << h1);
                        std::vector<float> out(size_t(n_head) * sh.head_dim + 1, 1234.0f);
                        std::vector<float> range_scores(size_t(h1 - h0) * n_pos);
                        pi::cpu::attend_heads(keys, values, f16, stride, lead, sh.head_dim, sh.group, h0, h1,
                                              q.data(), n_pos, scale, range_scores.data(), out.data(), level);
                        // The range's heads have attend_head's bits; nothing else was written.
                        const std::vector<float> got(out.begin() + size_t(h0) * sh.head_dim,
                                                     out.begin() + size_t(h1) * sh.head_dim);
                        const std::vector<float> want(one.begin() + size_t(h0) * sh.head_dim,
                                                      one.begin() + size_t(h1) * sh.head_dim);
                        CHECK(same_bits(got, want));
                        size_t untouched = 0;
                        for (size_t i = 0; i < out.size(); ++i) {
                            const bool inside = i >= size_t(h0) * sh.head_dim && i < size_t(h1) * sh.head_dim;
                            untouched += !inside && out[i] == 1234.0f;
                        }
                        CHECK(untouched == out.size() - size_t(h1 - h0) * sh.head_dim);
                    }
                }
            }
        }
    }
}

TEST_CASE("attention split over positions and merged matches the double softmax at every level", "[cpu][attention]") {
    // A decode token's context cut into parts (as host_attention cuts a long one over threads), each part through
    // attend_heads_part over every head, then merge_attention_parts: the whole softmax within 1e-5 of double, the
    // states the parts' own largest score and sum, and the same bits when run again.
    // 64 takes the AVX-512 head-major kernel, 72 its position-major form.
    for (const uint32_t head_dim : {64u, 72u}) {
        const uint32_t n_kv = 2, group = 2, n_head = n_kv * group, lead = 3;
        const size_t stride = lead + size_t(n_kv) * head_dim + 1;
        for (uint32_t n_pos : {2u, 9u, 300u, 777u}) {
            const Cache c = [&] {
                Cache x;
                x.stride = stride;
                x.k32 = random_vector(n_pos * stride, 21 + n_pos, 1.0f);
                x.v32 = random_vector(n_pos * stride, 22 + n_pos, 1.0f);
                for (float f : x.k32) x.k16.push_back(ref_fp16(f));
                for (float f : x.v32) x.v16.push_back(ref_fp16(f));
                return x;
            }();
            const std::vector<float> q = random_vector(size_t(n_head) * head_dim, 23 + n_pos, 0.5f);
            const float scale = 1.0f / std::sqrt(float(head_dim));
            for (uint32_t parts : {1u, 2u, 3u}) {
                if (parts > n_pos) continue;
                for (bool f16 : {true, false}) {
                    const size_t esz = f16 ? 2 : 4;
                    const auto *keys = f16 ? static_cast<const uint8_t *>(static_cast<const void *>(c.k16.data()))
                                           : static_cast<const uint8_t *>(static_cast<const void *>(c.k32.data()));
                    const auto *values = f16 ? static_cast<const uint8_t *>(static_cast<const void *>(c.v16.data()))
                                             : static_cast<const uint8_t *>(static_cast<const void *>(c.v32.data()));
                    for (IsaLevel level : available_levels()) {
                        INFO("n_pos " << n_pos << " parts " << parts << (f16 ? " F16" : " F32") << " level "
                                      << int(level));
                        auto run = [&] {
                            std::vector<float> outs(size_t(parts) * n_head * head_dim),
                                stats(size_t(parts) * 2 * n_head);
                            std::vector<float> scores(size_t(n_head) * n_pos), out(size_t(n_head) * head_dim);
                            for (uint32_t t = 0; t < parts; ++t) {
                                const uint32_t p0 = n_pos * t / parts, p1 = n_pos * (t + 1) / parts;
                                pi::cpu::attend_heads_part(keys + p0 * stride * esz, values + p0 * stride * esz, f16,
                                                           stride, lead, head_dim, group, 0, n_head, q.data(), p1 - p0,
                                                           scale, scores.data(), &outs[size_t(t) * n_head * head_dim],
                                                           &stats[size_t(t) * 2 * n_head], level);
                                // Each state: the part's largest score (within float rounding of the double one) and a
                                // sum of exponentials of at most 1 each, at least 1 (the largest itself).
                                for (uint32_t h = 0; h < n_head; ++h) {
                                    double m = -INFINITY;
                                    for (uint32_t p = p0; p < p1; ++p) {
                                        double d = 0.0;
                                        for (uint32_t i = 0; i < head_dim; ++i) {
                                            const size_t at = p * stride + lead + size_t(h / group) * head_dim + i;
                                            d += double(q[size_t(h) * head_dim + i]) *
                                                 (f16 ? half_value(c.k16[at]) : double(c.k32[at]));
                                        }
                                        m = std::max(m, d * scale);
                                    }
                                    CHECK(std::fabs(stats[size_t(t) * 2 * n_head + 2 * h] - m) <
                                          1e-4 * (1 + std::fabs(m)));
                                    const float sum = stats[size_t(t) * 2 * n_head + 2 * h + 1];
                                    CHECK(sum >= 0.999f);
                                    CHECK(sum <= float(p1 - p0) * 1.001f);
                                }
                            }
                            pi::cpu::merge_attention_parts(outs.data(), stats.data(), parts, n_head, head_dim,
                                                           out.data());
                            return out;
                        };
                        const std::vector<float> out = run();
                        for (uint32_t h = 0; h < n_head; ++h) {
                            Cache one = c;
                            one.offset = lead + size_t(h / group) * head_dim;
                            const std::vector<float> qh(q.begin() + size_t(h) * head_dim,
                                                        q.begin() + size_t(h + 1) * head_dim);
                            const std::vector<double> ref = reference(one, f16, qh, head_dim, n_pos, scale);
                            const std::vector<float> got(out.begin() + size_t(h) * head_dim,
                                                         out.begin() + size_t(h + 1) * head_dim);
                            CHECK(relative_l2(ref, got) < 1e-5);
                        }
                        CHECK(same_bits(out, run()));
                    }
                }
            }
        }
    }
}

TEST_CASE("a NaN in a key row makes the head's output NaN at every level, and leaves other heads alone",
          "[cpu][attention]") {
    // Two heads of 128 (the AVX-512 head-major form) and of 72 (its position-major form), F32 and F16 rows: a NaN in
    // head 0's key of position 2 poisons head 0's softmax; head 1 reads other elements and stays finite.
    for (uint32_t head_dim : {128u, 72u}) {
        const uint32_t n_pos = 37, stride = 2 * head_dim;
        std::vector<float> k = random_vector(size_t(n_pos) * stride, 31, 1.0f);
        const std::vector<float> v = random_vector(size_t(n_pos) * stride, 32, 1.0f);
        k[2 * stride + 5] = NAN;
        std::vector<uint16_t> k16, v16;
        for (float f : k) k16.push_back(ref_fp16(f));
        for (float f : v) v16.push_back(ref_fp16(f));
        k16[2 * stride + 5] = 0x7e00;  // a quiet NaN in F16
        const std::vector<float> q = random_vector(2 * head_dim, 33, 0.5f);
        for (bool f16 : {false, true}) {
            const void *keys = f16 ? static_cast<const void *>(k16.data()) : k.data();
            const void *values = f16 ? static_cast<const void *>(v16.data()) : v.data();
            for (IsaLevel level : available_levels()) {
                INFO("head_dim " << head_dim << (f16 ? " F16" : " F32") << " level " << int(level));
                std::vector<float> out(2 * head_dim), scores(2 * n_pos);
                pi::cpu::attend_heads(keys, values, f16, stride, 0, head_dim, 1, 0, 2, q.data(), n_pos, 0.1f,
                                      scores.data(), out.data(), level);
                CHECK(std::all_of(out.begin(), out.begin() + head_dim, [](float x) { return std::isnan(x); }));
                CHECK(std::all_of(out.begin() + head_dim, out.end(), [](float x) { return std::isfinite(x); }));
            }
        }
    }
}
