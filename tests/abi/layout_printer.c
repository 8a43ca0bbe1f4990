/* Prints the layout of every public struct and the value of every public enum constant, one fact a line, compiled
 * as C99 against the header. check_layout.sh compares it with the committed baseline: a struct may only grow at its
 * end, every published field keeps its offset and size, and no constant changes value.
 * (libabigail 2.2 cannot express "only appended fields", so this is the gate for struct layouts.)
 * When you append a field to a public struct, add a FIELD line here too. */
#include <stddef.h>
#include <stdio.h>

#include "powerinfer/powerinfer.h"

#define FIELD(type, field) \
    printf("field %s.%s %lu %lu\n", #type, #field, (unsigned long)offsetof(type, field), \
           (unsigned long)sizeof(((type *)0)->field))
#define SIZE(type) printf("size %s %lu\n", #type, (unsigned long)sizeof(type))
#define CONST(name) printf("const %s %ld\n", #name, (long)(name))

int main(void) {
    SIZE(pi_model_params);
    FIELD(pi_model_params, struct_size);
    FIELD(pi_model_params, backend);
    FIELD(pi_model_params, device);
    FIELD(pi_model_params, vram_budget);
    FIELD(pi_model_params, n_threads);
    FIELD(pi_model_params, use_mmap);
    FIELD(pi_model_params, progress);
    FIELD(pi_model_params, progress_user_data);
    FIELD(pi_model_params, sparse_threshold);
    FIELD(pi_model_params, profile_path);
    FIELD(pi_model_params, plan_n_ctx);
    FIELD(pi_model_params, plan_n_sessions);
    FIELD(pi_model_params, neuron_group);
    FIELD(pi_model_params, cost_gpu_bandwidth_gbps);
    FIELD(pi_model_params, cost_cpu_bandwidth_gbps);
    FIELD(pi_model_params, cost_sync_us);
    FIELD(pi_model_params, cost_launch_us);
    FIELD(pi_model_params, cost_transfer_latency_us);
    FIELD(pi_model_params, cost_transfer_gbps);

    SIZE(pi_model_info);
    FIELD(pi_model_info, struct_size);
    FIELD(pi_model_info, arch);
    FIELD(pi_model_info, name);
    FIELD(pi_model_info, n_vocab);
    FIELD(pi_model_info, n_ctx_train);
    FIELD(pi_model_info, n_embd);
    FIELD(pi_model_info, n_layer);
    FIELD(pi_model_info, n_ff);
    FIELD(pi_model_info, n_head);
    FIELD(pi_model_info, n_head_kv);
    FIELD(pi_model_info, is_sparse);
    FIELD(pi_model_info, n_params);
    FIELD(pi_model_info, file_bytes);
    FIELD(pi_model_info, gpu_bytes);
    FIELD(pi_model_info, ffn_activation);
    FIELD(pi_model_info, decode_weight_bytes);
    FIELD(pi_model_info, ffn_weight_bytes);
    FIELD(pi_model_info, predictor_weight_bytes);

    SIZE(pi_session_params);
    FIELD(pi_session_params, struct_size);
    FIELD(pi_session_params, n_ctx);
    FIELD(pi_session_params, n_batch);
    FIELD(pi_session_params, n_threads);
    FIELD(pi_session_params, seed);
    FIELD(pi_session_params, temperature);
    FIELD(pi_session_params, top_k);
    FIELD(pi_session_params, top_p);
    FIELD(pi_session_params, min_p);
    FIELD(pi_session_params, repeat_penalty);
    FIELD(pi_session_params, repeat_last_n);
    FIELD(pi_session_params, kv_type);
    FIELD(pi_session_params, sparse);
    FIELD(pi_session_params, sparse_threshold);
    FIELD(pi_session_params, profile_activations);

    SIZE(pi_placement_info);
    FIELD(pi_placement_info, struct_size);
    FIELD(pi_placement_info, n_layer);
    FIELD(pi_placement_info, budget_bytes);
    FIELD(pi_placement_info, gpu_bytes);
    FIELD(pi_placement_info, scratch_bytes);
    FIELD(pi_placement_info, kv_bytes);
    FIELD(pi_placement_info, plan_n_ctx);
    FIELD(pi_placement_info, plan_n_sessions);
    FIELD(pi_placement_info, neuron_group);
    FIELD(pi_placement_info, output_on_gpu);
    FIELD(pi_placement_info, n_gpu_attention);
    FIELD(pi_placement_info, reserved0);
    FIELD(pi_placement_info, n_gpu_neurons);
    FIELD(pi_placement_info, n_neurons);
    FIELD(pi_placement_info, step_seconds);
    FIELD(pi_placement_info, tokens_per_second);
    FIELD(pi_placement_info, gpu_bandwidth_gbps);
    FIELD(pi_placement_info, cpu_bandwidth_gbps);
    FIELD(pi_placement_info, sync_us);
    FIELD(pi_placement_info, launch_us);
    FIELD(pi_placement_info, transfer_latency_us);
    FIELD(pi_placement_info, transfer_gbps);
    FIELD(pi_placement_info, cpu_bandwidth_source);
    FIELD(pi_placement_info, gpu_cost_source);
    FIELD(pi_placement_info, memory_unit_bytes);

    SIZE(pi_placement_layer_info);
    FIELD(pi_placement_layer_info, struct_size);
    FIELD(pi_placement_layer_info, attention_on_gpu);
    FIELD(pi_placement_layer_info, n_gpu_neurons);
    FIELD(pi_placement_layer_info, n_neurons);
    FIELD(pi_placement_layer_info, gpu_bytes);
    FIELD(pi_placement_layer_info, t_gpu);
    FIELD(pi_placement_layer_info, t_cpu);
    FIELD(pi_placement_layer_info, time);
    FIELD(pi_placement_layer_info, freq_source);
    FIELD(pi_placement_layer_info, reserved0);
    FIELD(pi_placement_layer_info, active_neurons);
    FIELD(pi_placement_layer_info, gpu_active_neurons);

    SIZE(pi_token);
    SIZE(pi_status);
    CONST(PI_OK);
    CONST(PI_ERR_INVALID_ARGUMENT);
    CONST(PI_ERR_IO);
    CONST(PI_ERR_FORMAT);
    CONST(PI_ERR_UNSUPPORTED);
    CONST(PI_ERR_OUT_OF_MEMORY);
    CONST(PI_ERR_BACKEND);
    CONST(PI_ERR_CONTEXT_FULL);
    CONST(PI_ERR_BUFFER_TOO_SMALL);
    CONST(PI_ERR_CANCELLED);
    CONST(PI_ERR_INTERNAL);
    CONST(PI_LOG_ERROR);
    CONST(PI_LOG_WARN);
    CONST(PI_LOG_INFO);
    CONST(PI_LOG_DEBUG);
    CONST(PI_KV_F16);
    CONST(PI_KV_F32);
    CONST(PI_SPARSE_AUTO);
    CONST(PI_SPARSE_OFF);
    CONST(PI_SPARSE_ON);
    CONST(PI_FREQ_PRIOR);
    CONST(PI_FREQ_FILE);
    CONST(PI_FREQ_PROFILE);
    CONST(PI_FREQ_DENSE);
    CONST(PI_COST_DEFAULT);
    CONST(PI_COST_MEASURED);
    CONST(PI_COST_CACHED);
    CONST(PI_COST_PINNED);
    CONST(PI_ABI_VERSION);
    return 0;
}
