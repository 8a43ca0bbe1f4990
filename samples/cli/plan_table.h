// powerinfer-cli --plan: plans the placement of a model file (pi_plan_placement, no weights loaded) and prints it
// as a table: per layer where attention runs, the GPU's neurons, GPU memory and the predicted times.
#pragma once

#include <string>

#include "powerinfer/powerinfer.h"

// Plans `path` with `params` and prints the table to stdout. Returns the process exit status (0, or 1 on error
// with the message on stderr).
int run_plan(const std::string &path, const pi_model_params &params);
