// The module's one export: pi_backend_module_get, the table of backends/backend.h. Also the device-level entries
// (device_count, context, device_info); the operations live in one file each.
#include <cstdio>
#include <cstring>
#include <new>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_profile.h"

namespace pi::cuda {
namespace {

int32_t device_count(char *why, size_t why_capacity) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        // No driver, no device, or a driver older than this runtime: the host logs `why` and stays on the CPU.
        if (why && why_capacity) std::snprintf(why, why_capacity, "%s", cudaGetErrorString(err));
        cudaGetLastError();
        return -1;
    }
    return n;
}

int32_t context_create(const pi_bk_context_params *params, pi_bk_context **out) {
    if (!params || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: context_create: NULL params or out");
    if (params->struct_size < offsetof(pi_bk_context_params, device) + sizeof(int32_t)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: context_create: params.struct_size too small");
    }
    int n = 0;
    if (int32_t s = check(cudaGetDeviceCount(&n), "cudaGetDeviceCount")) return s;
    if (params->device < 0 || params->device >= n) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: device " + std::to_string(params->device) + " does not exist (" +
                                                    std::to_string(n) + " devices)");
    }
    if (int32_t s = check(cudaSetDevice(params->device), "cudaSetDevice")) return s;
    // cudaFree(0) creates the primary context now, so its failure is reported here rather than at the first op.
    if (int32_t s = check(cudaFree(nullptr), "creating the device context")) return s;
    int sm = 0;
    if (int32_t s = check(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, params->device),
                          "cudaDeviceGetAttribute")) {
        return s;
    }
    auto *ctx = new (std::nothrow) pi_bk_context{params->device, sm};
    if (!ctx) return fail(PI_BK_ERR_OUT_OF_MEMORY, "cuda: context_create: out of host memory");
    *out = ctx;
    return PI_BK_OK;
}

// The primary context stays alive (other contexts of this process may share it); only our object goes.
void context_free(pi_bk_context *ctx) { delete ctx; }

int32_t device_info(pi_bk_context *ctx, pi_bk_device_info *out) {
    if (!ctx || !out) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: device_info: NULL context or out");
    if (out->struct_size < sizeof(pi_bk_device_info)) {
        return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: device_info: struct_size too small");
    }
    cudaDeviceProp prop;
    if (int32_t s = check(cudaGetDeviceProperties(&prop, ctx->device), "cudaGetDeviceProperties")) return s;
    if (int32_t s = check(cudaSetDevice(ctx->device), "cudaSetDevice")) return s;
    size_t free_b = 0, total_b = 0;
    if (int32_t s = check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo")) return s;
    // prop.name is 256 bytes, ours 128: keep what fits, always terminated.
    const size_t len = strnlen(prop.name, sizeof prop.name);
    const size_t keep = len < sizeof out->name - 1 ? len : sizeof out->name - 1;
    std::memcpy(out->name, prop.name, keep);
    out->name[keep] = '\0';
    out->total_bytes = total_b;
    out->free_bytes = free_b;
    // What the runtime keeps for itself is not visible directly; total - free at this point is the context plus
    // whatever this process already allocated, an upper bound that the host reports, not budgets.
    out->context_bytes = total_b - free_b;
    return PI_BK_OK;
}

const pi_backend_ops kOps = {
    sizeof(pi_backend_ops),
    PI_BACKEND_INTERFACE_VERSION,
    "cuda",
    device_count,
    last_error,
    context_create,
    context_free,
    device_info,
    buffer_alloc,
    buffer_free,
    buffer_address,
    buffer_host_address,
    queue_create,
    queue_free,
    queue_synchronize,
    event_create,
    event_free,
    event_record,
    queue_wait_event,
    event_synchronize,
    copy_to_device,
    copy_to_host,
    matmul,
    predict,
    sparse_ffn,
    ffn_activation,
    norm,
    rope,
    kv_store,
    attention,
    embedding,
    add,
    matmul_t,
    wait_value,
    capture_begin,
    capture_end,
    matmul_add,
    attention_decode,
    matmul_glu,
    capture_relaunch,
    matmul_rmsnorm,
};

}  // namespace
}  // namespace pi::cuda

extern "C" __attribute__((visibility("default"))) const pi_backend_ops *pi_backend_module_get(void) {
    return pi::cuda::profiled_table(&pi::cuda::kOps);
}
