#include "planner/min_plus.h"

#include <algorithm>
#include <limits>

namespace pi::planner {

namespace {

struct Convolution {
    const double *a;
    size_t stride;
    const double *gr;
    size_t n;
    double *h;
    uint32_t *arg;

    // Row j's best i over [lo, hi] intersected with its band [j - (n - 1), j].
    size_t best_in_row(size_t j, size_t lo, size_t hi) const {
        const size_t band_lo = j >= n - 1 ? j - (n - 1) : 0;
        lo = std::max(lo, band_lo);
        hi = std::min(hi, j);
        double best = std::numeric_limits<double>::infinity();
        size_t best_i = lo;
        // g reversed (gr[t] = g[n - 1 - t]) so that both operands stream forward.
        const double *gr_row = gr + (n - 1) - j;
        if (stride == 1) {
            for (size_t i = lo; i <= hi; ++i) {
                const double v = a[i] + gr_row[i];
                if (v < best) {
                    best = v;
                    best_i = i;
                }
            }
        } else {
            for (size_t i = lo; i <= hi; ++i) {
                const double v = a[i * stride] + gr_row[i];
                if (v < best) {
                    best = v;
                    best_i = i;
                }
            }
        }
        h[j] = best;
        arg[j] = uint32_t(j - best_i);
        return best_i;
    }

    // Rows [j_lo, j_hi] whose best i lies in [i_lo, i_hi]. The bounds stay non-empty for every row: i_lo is the
    // best of a row above (<= that row < j) and i_hi the best of a row below (>= that row - (n - 1) > j - (n - 1)).
    void rows(size_t j_lo, size_t j_hi, size_t i_lo, size_t i_hi) const {
        while (j_lo <= j_hi) {
            const size_t j = j_lo + (j_hi - j_lo) / 2;
            const size_t i = best_in_row(j, i_lo, i_hi);
            if (j > j_lo) rows(j_lo, j - 1, i_lo, i);
            j_lo = j + 1;  // the lower half as a loop: recursion depth stays log2(count)
            i_lo = i;
        }
    }
};

}  // namespace

void min_plus_convex(const double *a, size_t stride, size_t count, const std::vector<double> &g, double *h,
                     uint32_t *arg) {
    if (count == 0 || g.empty()) return;
    std::vector<double> gr(g.rbegin(), g.rend());
    Convolution c{a, stride, gr.data(), g.size(), h, arg};
    c.rows(0, count - 1, 0, count - 1);
}

void min_plus_plain(const double *a, size_t stride, size_t count, const std::vector<double> &g, double *h,
                    uint32_t *arg) {
    if (g.empty()) return;
    std::vector<double> gr(g.rbegin(), g.rend());
    Convolution c{a, stride, gr.data(), g.size(), h, arg};
    for (size_t j = 0; j < count; ++j) c.best_in_row(j, 0, j);
}

}  // namespace pi::planner
