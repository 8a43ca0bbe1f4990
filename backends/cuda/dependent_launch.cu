// dependent_launch_enabled(): programmatic dependent launch needs an sm_90+ device and this module's sm_90+ code (an
// sm_80 build run through the driver's JIT has its waits compiled out, so its kernels must not run ahead).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backends/cuda/dependent_launch.cuh"

namespace pi::cuda {
namespace {

__global__ void probe_kernel() { dev::wait_for_producers(); }

constexpr int kMaxDevices = 64;
std::atomic<int8_t> g_state[kMaxDevices];  // 0 unknown, 1 on, -1 off

bool decide(int device) {
    const char *v = std::getenv("PI_CUDA_PDL");
    if (v && std::strcmp(v, "0") == 0) return false;
    int major = 0;
    cudaFuncAttributes attributes{};
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
        cudaGetLastError();  // a failed query is not the caller's launch error
        return false;
    }
    return major >= 9 && attributes.binaryVersion >= 90 && attributes.ptxVersion >= 90;
}

}  // namespace

bool dependent_launch_enabled() {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    if (device < 0 || device >= kMaxDevices) return false;
    int8_t state = g_state[device].load(std::memory_order_relaxed);
    if (state == 0) {
        state = decide(device) ? 1 : -1;
        g_state[device].store(state, std::memory_order_relaxed);
    }
    return state > 0;
}

}  // namespace pi::cuda
