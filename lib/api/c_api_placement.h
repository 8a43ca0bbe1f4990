// The planner's load parameters (pi_model_params.plan_* / profile_path / neuron_group / cost_*), shared by
// pi_plan_placement and pi_model_load so that both check and read them the same way.
#pragma once

#include "planner/cost_cache.h"
#include "planner/model_problem.h"
#include "powerinfer/powerinfer.h"

namespace pi::api {

// Throws PI_ERR_INVALID_ARGUMENT naming `function` and the field: plan_n_ctx, plan_n_sessions or neuron_group out
// of range, a cost_* field negative, NaN or infinite.
void check_plan_params(const pi_model_params &params, const char *function);

planner::CostOverrides cost_overrides(const pi_model_params &params);

// The planner's options for a budget already resolved (PI_VRAM_BUDGET_AUTO is the caller's to turn into bytes).
planner::ModelPlanOptions plan_options(const pi_model_params &params, uint64_t budget_bytes);

}  // namespace pi::api
