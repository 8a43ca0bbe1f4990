#include "runtime/device_probe.h"

#include <chrono>
#include <cstring>

namespace pi {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The probe's device objects, freed whatever happens.
struct ProbeObjects {
    const pi_backend_ops *ops;
    pi_bk_buffer *matrix = nullptr, *vectors = nullptr, *pinned = nullptr;
    pi_bk_queue *queue = nullptr;
    ~ProbeObjects() {
        if (queue) {
            ops->queue_synchronize(queue);
            ops->queue_free(queue);
        }
        ops->buffer_free(matrix);
        ops->buffer_free(vectors);
        ops->buffer_free(pinned);
    }
};

constexpr uint64_t kRows = 4096, kCols = 8192;  // F16: 64 MiB
constexpr uint64_t kMatrixBytes = kRows * kCols * 2;

}  // namespace

planner::GpuMeasurement probe_device(const pi_backend_ops *ops, pi_bk_context *ctx) {
    planner::GpuMeasurement m;
    ProbeObjects o{ops};
    if (ops->buffer_alloc(ctx, kMatrixBytes, PI_BK_MEMORY_DEVICE, &o.matrix) != PI_BK_OK ||
        ops->buffer_alloc(ctx, (kRows + kCols) * 4, PI_BK_MEMORY_DEVICE, &o.vectors) != PI_BK_OK ||
        ops->buffer_alloc(ctx, kMatrixBytes, PI_BK_MEMORY_HOST_PINNED, &o.pinned) != PI_BK_OK ||
        ops->queue_create(ctx, &o.queue) != PI_BK_OK) {
        return m;
    }
    void *host = ops->buffer_host_address(o.pinned);
    void *dev = ops->buffer_address(o.matrix);
    float *x = static_cast<float *>(ops->buffer_address(o.vectors)), *y = x + kCols;
    std::memset(host, 0, kMatrixBytes);  // zeros: finite F16 weights and activations

    // Transfer bandwidth (a warm-up copy first: the first touches map the pages).
    if (ops->copy_to_device(o.queue, dev, host, kMatrixBytes) != PI_BK_OK || ops->queue_synchronize(o.queue) != PI_BK_OK) return m;
    auto t0 = Clock::now();
    for (int i = 0; i < 2; ++i) ops->copy_to_device(o.queue, dev, host, kMatrixBytes);
    if (ops->queue_synchronize(o.queue) != PI_BK_OK) return m;
    m.transfer_gbps = 2.0 * double(kMatrixBytes) / seconds_since(t0) / 1e9;
    if (ops->copy_to_device(o.queue, x, host, (kRows + kCols) * 4) != PI_BK_OK) return m;

    // A small copy's round trip.
    constexpr int kTrips = 20;
    t0 = Clock::now();
    for (int i = 0; i < kTrips; ++i) {
        if (ops->copy_to_host(o.queue, host, x, 4) != PI_BK_OK || ops->queue_synchronize(o.queue) != PI_BK_OK) return m;
    }
    m.transfer_latency_us = seconds_since(t0) / kTrips * 1e6;

    // Product bandwidth.
    pi_bk_matrix w{};
    w.data = dev;
    w.type = PI_BK_F16;
    w.n_rows = kRows;
    w.n_cols = kCols;
    w.row_stride = kCols * 2;
    if (ops->matmul(o.queue, &w, x, 1, y) != PI_BK_OK || ops->queue_synchronize(o.queue) != PI_BK_OK) return m;
    constexpr int kProducts = 10;
    t0 = Clock::now();
    for (int i = 0; i < kProducts; ++i) ops->matmul(o.queue, &w, x, 1, y);
    if (ops->queue_synchronize(o.queue) != PI_BK_OK) return m;
    m.bandwidth_gbps = kProducts * double(kMatrixBytes) / seconds_since(t0) / 1e9;

    // Host time per enqueued operation (tiny adds: the device keeps up, so this is the host's side).
    constexpr int kLaunches = 200;
    t0 = Clock::now();
    for (int i = 0; i < kLaunches; ++i) ops->add(o.queue, y, x, 1, 1, 0);
    m.launch_us = seconds_since(t0) / kLaunches * 1e6;
    ops->queue_synchronize(o.queue);
    return m;
}

}  // namespace pi
