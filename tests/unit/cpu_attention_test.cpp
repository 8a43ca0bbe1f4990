// attend_head, the decode attention of one query head over a KV cache, at every ISA level this CPU runs, against a
// softmax written from the definition in double precision; cache rows in F16 and binary32, strided with an offset
// (one head's slice of a row holding several heads), head sizes that are and are not multiples of 16, and position
// counts around the AVX-512 kernel's blocks of four.
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
    for (uint32_t head_dim : {16u, 80u, 128u}) {
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
