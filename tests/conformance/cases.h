// The conformance cases: each op runs on the reference (the CPU table) and on the candidate with the same random
// inputs, and its outputs are compared with a tolerance stated next to the op. One row per op x type x shape;
// adding an op or a shape adds rows, not a new program.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "device.h"
#include "host_data.h"

namespace pi::conformance {

struct CaseResult {
    std::string op, type, shape;
    double error = 0.0;  // relative L2 error (see host_data.h), or a count of disagreements for lists
    double tolerance = 0.0;
    bool pass = false;
    std::string note;  // why it failed, or what was compared
};

struct Env {
    Device &ref;
    Device &cand;
    Rng rng;
    std::vector<CaseResult> results;

    // Runs one row: body() returns the error (and may set *note); a BackendFailure or a bad error fails the row.
    // Both devices' buffers are released afterwards.
    void row(const std::string &op, const std::string &type, const std::string &shape, double tolerance,
             const std::function<double(std::string *note)> &body);
};

// Registered op groups, in report order.
void dense_cases(Env &env);   // matmul, embedding, add, ffn_activation
void layer_cases(Env &env);   // norm, rope, kv_store, attention
void sparse_cases(Env &env);  // predict, sparse_ffn

}  // namespace pi::conformance
