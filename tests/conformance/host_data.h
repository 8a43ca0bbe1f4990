// Random inputs and the error measure of the conformance suite.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "device.h"

namespace pi::conformance {

using Rng = std::mt19937_64;

std::vector<float> random_floats(Rng &rng, size_t n, float scale = 1.0f);

// An n_rows x n_cols matrix of `type` with random weights: normal values (scaled by `scale`) rounded to the type for
// F32/F16/BF16; for Q8_0/Q4_0 random block scales around `scale` / 64 (resp. / 4) and uniform random codes, so every
// code occurs. `pad` extra bytes (a multiple of 16) follow each row, so row_stride != the row size.
HostMatrix random_matrix(Rng &rng, uint32_t type, uint64_t n_rows, uint64_t n_cols, float scale = 1.0f,
                         uint64_t pad = 0);

const char *type_name(uint32_t type);
// Types of every weight-taking op, in report order.
const std::vector<uint32_t> &all_weight_types();

// The error of `got` against `want`: ||got - want||_2 / max(||want||_2, tiny), and inf when the lengths differ or
// got holds a NaN/inf where want does not (a NaN must never pass as small).
double relative_error(const std::vector<float> &got, const std::vector<float> &want);

}  // namespace pi::conformance
