// How the threads of a product divide its rows: each thread owns one contiguous share and takes it front to back;
// a thread whose share is done takes chunks from the back of the others' shares.
//
// Why shares and not one queue of chunks handed out in order: with a shared queue two cores read neighbouring
// chunks, and each chunk restarts the kernels' prefetch; a share is one stream a core, as the bandwidth probe reads.
// On the development VM at its higher bandwidth level (two threads, `pi-kernel-bench --types Q4_0X8`) the shared
// queue read the predictor's shapes at 80-90 % of the probe, these shares at 92-100 % (the larger shapes alike,
// 87-97 %); a Q4_0 sparse step gained ~0.5 % (within the VM's noise), and the GPU machine's 16-core CPU decode
// was unchanged (docs/PERFORMANCE.md, "2026-11-28 (sixth)"). Chunks shrink as a share empties, so any thread can
// take what is left late in a product: a core slowed by the host does not hold it up.
//
// Each row goes to exactly one thread and is computed with the same operations whichever thread takes it, so
// results do not depend on the split.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace pi::cpu {

class RowShares {
public:
    // Rows [0, n) for n_threads threads. Chunks start at multiples of `align` rows (F16X8 and Q4_0X8 are read eight
    // rows at a time). Owner and thief alike take half of what a share has left, at least min_rows and at most
    // max_rows (both at least 1, rounded up to whole `align`): chunks shrink as a share empties, so what is left late
    // in a product stays in small pieces any thread can take. (Taking max_rows at a time made a 16-thread product a
    // static split -- most shares were one chunk -- and the GPU machine's 16-core CPU decode 7 % slower.)
    // Built where it is used (not copied or moved: up to kInlineShares ranges live inside the object, so a product
    // on a pool of that size allocates nothing).
    RowShares(size_t n, size_t n_threads, size_t min_rows, size_t max_rows, size_t align = 1)
        : shares_(std::max<size_t>(1, n_threads)),
          align_(std::max<size_t>(1, align)),
          min_rows_(round_up(std::max<size_t>(1, min_rows))),
          max_rows_(round_up(std::max<size_t>(1, max_rows))),
          heap_(shares_ > kInlineShares ? new Range[shares_] : nullptr),
          range_(heap_ ? heap_.get() : inline_) {
        assert(n <= 0xffffffffu && "a share's ends are packed in 32 bits each");
        for (size_t t = 0; t < shares_; ++t) {
            const uint64_t b = std::min(n, round_up(n * t / shares_)), e = std::min(n, round_up(n * (t + 1) / shares_));
            range_[t].bits.store(pack(b, e), std::memory_order_relaxed);
        }
    }
    RowShares(const RowShares &) = delete;
    RowShares &operator=(const RowShares &) = delete;

    // The next chunk [begin, end) for thread t (any t: one past the shares only steals), or false when every row is
    // taken.
    bool next(size_t t, size_t &begin, size_t &end) {
        if (t < shares_ && take_front(range_[t], begin, end)) return true;
        for (size_t i = 1; i <= shares_; ++i) {
            if (take_back(range_[(t + i) % shares_], begin, end)) return true;
        }
        return false;
    }

private:
    struct alignas(64) Range {  // [front, back) of a share, packed so that one compare-exchange moves either end
        std::atomic<uint64_t> bits{0};
    };
    static uint64_t pack(uint64_t front, uint64_t back) { return front | back << 32; }
    static size_t front_of(uint64_t bits) { return static_cast<size_t>(bits & 0xffffffffu); }
    static size_t back_of(uint64_t bits) { return static_cast<size_t>(bits >> 32); }
    size_t round_up(size_t rows) const { return (rows + align_ - 1) / align_ * align_; }
    size_t round_down(size_t rows) const { return rows / align_ * align_; }
    // Half of `left`, within [min_rows, max_rows].
    size_t piece(size_t left) const { return std::min(max_rows_, std::max(min_rows_, left / 2)); }

    bool take_front(Range &r, size_t &begin, size_t &end) {
        uint64_t bits = r.bits.load(std::memory_order_relaxed);
        for (;;) {
            const size_t f = front_of(bits), b = back_of(bits);
            if (f >= b) return false;
            const size_t e = std::min(b, f + round_up(piece(b - f)));
            if (r.bits.compare_exchange_weak(bits, pack(e, b), std::memory_order_relaxed)) {
                begin = f, end = e;
                return true;
            }
        }
    }

    bool take_back(Range &r, size_t &begin, size_t &end) {
        uint64_t bits = r.bits.load(std::memory_order_relaxed);
        for (;;) {
            const size_t f = front_of(bits), b = back_of(bits);
            if (f >= b) return false;
            // A piece from the back, starting on an `align` boundary (f is on one).
            const size_t want = piece(b - f);
            const size_t s = b - f <= want ? f : std::max(f, round_down(b - want));
            if (r.bits.compare_exchange_weak(bits, pack(f, s), std::memory_order_relaxed)) {
                begin = s, end = b;
                return true;
            }
        }
    }

    static constexpr size_t kInlineShares = 16;
    const size_t shares_, align_, min_rows_, max_rows_;
    Range inline_[kInlineShares];
    std::unique_ptr<Range[]> heap_;  // more threads than kInlineShares
    Range *const range_;
};

}  // namespace pi::cpu
