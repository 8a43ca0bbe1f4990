// The solver's inner step: a min-plus convolution of an arbitrary sequence with a short convex one.
//
//   h[j] = min over i in [max(0, j - (n - 1)), j] of a[i] + g[j - i],   j = 0 .. count - 1,   n = g.size()
//
// With g convex (and extended past its end by its last value, which changes nothing when a is non-increasing, as
// the solver's tables are), the best i is non-decreasing in j: for j < j' and i' < i = best(j), convexity gives
// g(j' - i') - g(j' - i) >= g(j - i') - g(j - i), so a[i'] + g(j' - i') >= a[i] + g(j' - i) and i' cannot beat i in
// row j' either (symmetrically on the other side). Divide and conquer on j then costs O(count log count) instead of
// O(count * n).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pi::planner {

// a: count values read as a[i * stride]; h, arg: count values each; arg[j] = j - best i (the index into g).
// Equal values: the smallest i (the largest index into g) wins.
void min_plus_convex(const double *a, size_t stride, size_t count, const std::vector<double> &g, double *h,
                     uint32_t *arg);

// The same result for any g, by scanning every i: O(count * n). The fallback for a non-convex g, and the check.
void min_plus_plain(const double *a, size_t stride, size_t count, const std::vector<double> &g, double *h,
                    uint32_t *arg);

}  // namespace pi::planner
