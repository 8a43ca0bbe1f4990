// A long context decoded on several threads: past PI_ATTENTION_SPLIT_POSITIONS (256) positions, a decode token's
// attention splits the positions over the threads as well as the heads (host_attention), each part's softmax merged
// afterwards. The one-thread session (never split) is the reference: the same greedy tokens, logits within
// float rounding of a different summation order, and the same bits when the split session runs again.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "session_test_helpers.h"

using namespace pi::test;

namespace {

double relative_difference(const std::vector<float> &ref, const std::vector<float> &got) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("a long context on two threads (attention split over positions) decodes as on one", "[session][attention]") {
    TinyModelSpec spec;
    spec.n_embd = 64;  // 4 heads of 16, 2 KV heads: a GQA group of 2 in every part
    spec.n_ctx_train = 1024;
    const std::string path = write_tiny_model(spec, "long_context");
    pi_model *raw = nullptr;
    REQUIRE(pi_model_load(path.c_str(), nullptr, &raw) == PI_OK);
    const std::unique_ptr<pi_model, void (*)(pi_model *)> model(raw, pi_model_free);
    const std::vector<pi_token> prompt = prompt_tokens(600, 7);
    for (int32_t kv : {PI_KV_F16, PI_KV_F32}) {
        INFO("kv type " << kv);
        pi_session_params p = greedy_params(1, PI_SPARSE_OFF);
        p.n_ctx = 700;
        p.kv_type = kv;
        std::vector<pi_token> one_tokens, two_tokens, again_tokens;
        const std::vector<float> one = run_session(model.get(), p, prompt, 40, one_tokens);
        p.n_threads = 2;  // decode steps at positions 600..639: two parts of >= 300 positions
        const std::vector<float> two = run_session(model.get(), p, prompt, 40, two_tokens);
        const std::vector<float> again = run_session(model.get(), p, prompt, 40, again_tokens);
        p.n_threads = 8;  // four parts of >= 150 positions, each in two ranges of heads
        std::vector<pi_token> eight_tokens;
        const std::vector<float> eight = run_session(model.get(), p, prompt, 40, eight_tokens);
        CHECK(eight_tokens == one_tokens);
        CHECK(relative_difference(one, eight) < 1e-5);
        CHECK(two_tokens == one_tokens);
        CHECK(relative_difference(one, two) < 1e-5);
        // Split by heads, two threads give one thread's bits; by positions they differ in the last bits (the parts'
        // merge is another summation order): so the split path ran.
        CHECK(!same_bits(one, two));
        CHECK(again_tokens == two_tokens);
        CHECK(same_bits(two, again));
    }
}
