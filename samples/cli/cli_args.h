// Command-line options of powerinfer-cli.
#pragma once

#include <cstdint>
#include <string>

#include "powerinfer/powerinfer.h"

struct CliArgs {
    std::string model;  // empty: the default model
    std::string prompt = "Once upon a time";
    int32_t n_predict = 64;
    bool info_only = false;
    bool stats = false;        // print the measured sparsity per layer
    std::string profile_out;   // save the activation profile here
    bool show_help = false;
    bool plan = false;         // --plan: print the placement plan and exit, without loading the weights
    std::string profile_storage;  // --profile FILE (model_params.profile_path points here)
    pi_model_params model_params;
    pi_session_params session_params;
    std::string backend_storage;
};

// Parses argv into args. Returns false and fills `error` on bad input.
bool parse_cli_args(int argc, char **argv, CliArgs &args, std::string &error);

void print_cli_usage(const char *program);
