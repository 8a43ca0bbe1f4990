// Sessions on one shared model in several threads give exactly the tokens each gives alone (DESIGN §3: a model is
// immutable and shared; a session belongs to one thread at a time). Run under TSan by tools/test.sh.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "session_test_helpers.h"

using namespace pi::test;

namespace {

struct Job {
    SessionSettings settings;
    std::vector<pi_token> prompt;
    std::vector<pi_token> tokens;  // prompt continuation, filled by run()
    std::vector<float> last_logits;
    pi_status status = PI_OK;
};

constexpr size_t kGenerated = 40;

// No Catch2 assertions here: this runs on worker threads.
void run(pi_model *model, Job &job) {
    const pi_session_params p = session_params(job.settings);
    pi_session *s = nullptr;
    job.status = pi_session_create(model, &p, &s);
    if (job.status != PI_OK) return;
    job.status = pi_session_eval(s, job.prompt.data(), job.prompt.size());
    if (job.status == PI_OK) job.status = generate(s, kGenerated, job.tokens);
    const float *logits = nullptr;
    size_t n = 0;
    if (job.status == PI_OK) job.status = pi_session_logits(s, &logits, &n);
    if (job.status == PI_OK) job.last_logits.assign(logits, logits + n);
    pi_session_free(s);
}

// Runs every job alone, then all at once (each in its own thread, released together), and compares.
void check_parallel_equals_alone(pi_model *model, const std::vector<Job> &jobs) {
    std::vector<Job> alone = jobs, together = jobs;
    for (Job &j : alone) {
        run(model, j);
        REQUIRE(j.status == PI_OK);
        REQUIRE(j.tokens.size() == kGenerated);
    }
    std::atomic<size_t> ready{0};
    std::vector<std::thread> threads;
    for (Job &j : together) {
        threads.emplace_back([&] {
            ready.fetch_add(1);
            while (ready.load() < together.size()) std::this_thread::yield();  // start together: maximal overlap
            run(model, j);
        });
    }
    for (std::thread &t : threads) t.join();
    for (size_t i = 0; i < jobs.size(); ++i) {
        INFO("session " << i);
        REQUIRE(together[i].status == PI_OK);
        CHECK(together[i].tokens == alone[i].tokens);
        CHECK(same_bits(together[i].last_logits, alone[i].last_logits));
    }
    // The jobs really differ from each other (different prompts give different continuations).
    CHECK(alone[0].tokens != alone[1].tokens);
}

}  // namespace

TEST_CASE("two sessions on one model in two threads give the same tokens as each alone", "[session][threads]") {
    ModelHandle m;
    for (float temperature : {0.0f, 0.9f}) {
        INFO("temperature " << temperature);
        std::vector<Job> jobs(2);
        for (size_t i = 0; i < jobs.size(); ++i) {
            jobs[i].settings.temperature = temperature;
            jobs[i].settings.seed = 11 + i;
            jobs[i].prompt = prompt_tokens(6 + i, static_cast<uint32_t>(20 + i));
        }
        check_parallel_equals_alone(m.model, jobs);
    }
}

TEST_CASE("four sessions at once, greedy and sampled, F16 and F32 caches", "[session][threads]") {
    ModelHandle m;
    std::vector<Job> jobs(4);
    for (size_t i = 0; i < jobs.size(); ++i) {
        jobs[i].settings.temperature = i % 2 ? 1.2f : 0.0f;
        jobs[i].settings.seed = 100 + i;
        jobs[i].settings.kv_type = i < 2 ? PI_KV_F16 : PI_KV_F32;
        jobs[i].settings.n_batch = i == 3 ? 2 : 512;
        jobs[i].prompt = prompt_tokens(5 + 2 * i, static_cast<uint32_t>(30 + i));
    }
    check_parallel_equals_alone(m.model, jobs);
}
