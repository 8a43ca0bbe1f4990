// capture_begin / capture_end: a decode step recorded as a CUDA graph and launched as one unit. The step's ~400
// small kernels then run without per-launch gaps. Each step is recorded anew (positions change); the executable
// graph of the previous step is updated in place when the topology is the same (cudaGraphExecUpdate, far cheaper
// than instantiating), else instantiated again.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_profile.h"

namespace pi::cuda {

int32_t capture_begin(pi_bk_queue *queue) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: capture_begin: NULL queue");
    if (op_profile_enabled()) return fail(PI_BK_ERR_UNSUPPORTED, "cuda: PI_CUDA_PROFILE times operations one by one");
    if (int32_t s = check(cudaSetDevice(queue->device), "cudaSetDevice")) return s;
    // Thread-local mode: other threads' CUDA calls (other sessions) are not affected by this capture.
    return check(cudaStreamBeginCapture(queue->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

int32_t capture_end(pi_bk_queue *queue, int32_t launch) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: capture_end: NULL queue");
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(queue->stream, &graph);
    if (ended != cudaSuccess || !launch) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();  // a capture invalidated by an unsupported call is not sticky
        return launch ? check(ended, "cudaStreamEndCapture") : PI_BK_OK;
    }
    int32_t status = PI_BK_OK;
    if (queue->graph_exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(queue->graph_exec, graph, &info) != cudaSuccess) {
            cudaGetLastError();
            cudaGraphExecDestroy(queue->graph_exec);
            queue->graph_exec = nullptr;
        }
    }
    if (!queue->graph_exec) status = check(cudaGraphInstantiate(&queue->graph_exec, graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);
    if (status != PI_BK_OK) return status;
    return check(cudaGraphLaunch(queue->graph_exec, queue->stream), "cudaGraphLaunch");
}

int32_t capture_relaunch(pi_bk_queue *queue) {
    if (!queue) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: capture_relaunch: NULL queue");
    if (!queue->graph_exec) return fail(PI_BK_ERR_INVALID_ARGUMENT, "cuda: capture_relaunch: nothing recorded");
    if (int32_t s = check(cudaSetDevice(queue->device), "cudaSetDevice")) return s;
    return check(cudaGraphLaunch(queue->graph_exec, queue->stream), "cudaGraphLaunch");
}

}  // namespace pi::cuda
