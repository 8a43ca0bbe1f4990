// Picks the next token from logits: repetition penalty, temperature, top-k, top-p, min-p, seeded RNG. The same
// seed and the same logits give the same tokens on every platform (the RNG is mt19937_64, whose output the C++
// standard fixes, turned into doubles by hand rather than through a library distribution).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pi {

struct SamplingParams {
    uint64_t seed = 0;
    float temperature = 0.8f;   // 0: greedy argmax
    int32_t top_k = 40;         // 0: off
    float top_p = 0.95f;        // 1: off
    float min_p = 0.05f;        // 0: off
    float repeat_penalty = 1.1f;  // 1: off
    int32_t repeat_last_n = 64;   // 0: off

    // Throws PI_ERR_INVALID_ARGUMENT naming the bad field.
    void validate(const char *function) const;
};

class Sampler {
public:
    explicit Sampler(const SamplingParams &params);

    // `history` is the context so far (the penalty looks at its last repeat_last_n tokens).
    Token sample(const float *logits, size_t n_vocab, const std::vector<Token> &history);

    void reseed() { set_rng_position({params_.seed, 0}); }
    const SamplingParams &params() const { return params_; }

    // Where the generator stands: the seed it started from and the numbers drawn since. The mt19937_64 sequence is
    // fixed by the C++ standard, so a position restores bit-exactly on any platform (session state files, undoing
    // the draw of a step whose forward pass failed). Setting one replays `draws` numbers: O(draws).
    struct RngPosition {
        uint64_t seed = 0;
        uint64_t draws = 0;
    };
    RngPosition rng_position() const { return position_; }
    void set_rng_position(const RngPosition &position);

private:
    double uniform();  // [0, 1)

    SamplingParams params_;
    std::mt19937_64 rng_;
    RngPosition position_;
    std::vector<std::pair<float, Token>> candidates_;  // reused between calls
};

}  // namespace pi
