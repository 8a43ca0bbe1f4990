// The placement planner's entry point (DESIGN.md section 6, docs/PLANNER.md).
//
//   pi::planner::PlacementProblem problem;      // per-layer frequencies and byte sizes, budget, group size
//   pi::planner::CostParams params;             // bandwidths and latencies (measured or pinned)
//   pi::planner::Placement p = pi::planner::plan(problem, params);
//
// plan() returns the placement of least predicted decode-step time among all placements of the discretized
// problem (memory in whole units, every object rounded up), so p.gpu_bytes <= problem.budget_bytes always.
// budget_bytes == 0, or a budget below scratch_bytes, places nothing on the GPU. Deterministic: the same inputs give
// the same placement. Cost: O(n_ff) per layer to rank neurons plus O(L * M log M) for M memory units.
// Bad input (no layers, n_ff == 0, neuron_bytes == 0, group_size == 0, a frequency outside [0, 1], a bad cost
// parameter) throws pi::Error(PI_ERR_INVALID_ARGUMENT) with a message naming the field.
#pragma once

#include "planner/cost_model.h"
#include "planner/placement.h"
#include "planner/placement_problem.h"

namespace pi::planner {

Placement plan(const PlacementProblem &problem, const CostParams &params, const PlannerOptions &options = {});

// The memory unit plan() counts in for these inputs (exposed for tests and for the log).
uint64_t choose_memory_unit(const PlacementProblem &problem, const PlannerOptions &options);

}  // namespace pi::planner
