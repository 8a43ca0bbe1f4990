// The row split of the matvecs (backends/cpu/row_shares.h): every row goes to exactly one chunk, chunks start on
// `align` boundaries, a thread takes its own share front to back before it steals, thieves take from the back. Run
// under TSan (PI_SANITIZE=thread) too, for the concurrent case.
#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "backends/cpu/row_shares.h"
#include "cpu_test_helpers.h"

using pi::cpu::RowShares;

namespace {

struct Chunk {
    size_t begin, end;
};

// Every row of [0, n) in exactly one chunk, each chunk non-empty and starting on an `align` boundary.
void require_exact_cover(std::vector<Chunk> chunks, size_t n, size_t align) {
    std::sort(chunks.begin(), chunks.end(), [](const Chunk &a, const Chunk &b) { return a.begin < b.begin; });
    size_t next = 0;
    for (const Chunk &c : chunks) {
        REQUIRE(c.begin == next);
        REQUIRE(c.end > c.begin);
        REQUIRE(c.begin % align == 0);
        next = c.end;
    }
    REQUIRE(next == n);
}

}  // namespace

TEST_CASE("row shares: one thread takes its share in shrinking chunks, then steals the others' from the back",
          "[cpu]") {
    // 1000 rows, 4 shares of 250 (aligned to 8: 0, 256, 504, 752); chunks are half of what a share has left, at
    // least 16 and at most 64 rows, rounded up to 8.
    RowShares shares(1000, 4, 16, 64, 8);
    std::vector<Chunk> chunks;
    size_t b = 0, e = 0;
    while (shares.next(1, b, e)) chunks.push_back({b, e});
    // Own share [256, 504) first, front to back: 248 rows left -> 64, 184 -> 64, 120 -> 60 -> 64, 56 -> 28 -> 32,
    // 24 -> 16, 8 -> the rest.
    const std::vector<size_t> own_ends = {320, 384, 448, 480, 496, 504};
    REQUIRE(chunks.size() > own_ends.size());
    size_t begin = 256;
    for (size_t i = 0; i < own_ends.size(); ++i) {
        REQUIRE(chunks[i].begin == begin);
        REQUIRE(chunks[i].end == own_ends[i]);
        begin = own_ends[i];
    }
    // Then share 2 [504, 752) from its back: 248 left -> 64 rows, [688, 752).
    REQUIRE(chunks[6].begin == 688);
    REQUIRE(chunks[6].end == 752);
    for (size_t i = 6; i < chunks.size(); ++i) REQUIRE(chunks[i].end - chunks[i].begin >= 8);
    require_exact_cover(chunks, 1000, 8);
}

TEST_CASE("row shares: edge cases", "[cpu]") {
    size_t b = 0, e = 0;
    RowShares empty(0, 4, 1, 1);
    REQUIRE_FALSE(empty.next(0, b, e));

    // Fewer rows than threads: some shares are empty; a thread past the shares only steals.
    RowShares few(3, 8, 1, 100);
    std::vector<Chunk> chunks;
    while (few.next(9, b, e)) chunks.push_back({b, e});
    require_exact_cover(chunks, 3, 1);

    // More threads than the ranges kept inside the object (the rest on the heap), each taking in turn.
    RowShares many(1000, 20, 1, 8);
    chunks.clear();
    for (bool any = true; any;) {
        any = false;
        for (size_t t = 0; t < 20; ++t) {
            if (many.next(t, b, e)) chunks.push_back({b, e}), any = true;
        }
    }
    REQUIRE(chunks[19].begin == 950);  // thread 19's first chunk: the front of its own share [950, 1000)
    require_exact_cover(chunks, 1000, 1);

    // One share: the owner gets everything, in chunks of at most max_rows; the last one may end off the alignment.
    RowShares one(21, 1, 1, 8, 8);
    chunks.clear();
    while (one.next(0, b, e)) chunks.push_back({b, e});
    REQUIRE(chunks.size() == 3);
    REQUIRE(chunks[0].end == 8);  // 21 left: half is 10, at most 8
    REQUIRE(chunks[2].begin == 16);
    REQUIRE(chunks[2].end == 21);
    require_exact_cover(chunks, 21, 8);
}

TEST_CASE("row shares: concurrent threads cover every row exactly once", "[cpu]") {
    std::mt19937 rng(5);
    for (int round = 0; round < 50; ++round) {
        const size_t n = 1 + rng() % 20000, threads = 1 + rng() % 6, align = (rng() % 2) ? 8 : 1;
        const size_t min_rows = 1 + rng() % 40, max_rows = min_rows + rng() % 200;
        RowShares shares(n, threads, min_rows, max_rows, align);
        std::vector<std::vector<Chunk>> taken(threads);
        std::vector<std::thread> pool;
        for (size_t t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                size_t b = 0, e = 0;
                while (shares.next(t, b, e)) {
                    taken[t].push_back({b, e});
                    if ((b / align) % 3 == t % 3) std::this_thread::yield();  // uneven speeds: thieves find work
                }
            });
        }
        for (std::thread &th : pool) th.join();
        std::vector<Chunk> all;
        for (const auto &v : taken) all.insert(all.end(), v.begin(), v.end());
        require_exact_cover(all, n, align);
    }
}
