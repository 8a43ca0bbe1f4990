// One backend under test, opened through its table (backends/backend.h): a context, a queue, and the buffers a case
// allocates (freed together by release()). Every call is checked; a failure throws BackendFailure with the
// backend's last_error() text, so a case reports it instead of crashing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace pi::conformance {

struct BackendFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A weight matrix as bytes in host memory, in the layout backend matrices use.
struct HostMatrix {
    uint32_t type = PI_BK_F32;
    uint64_t n_rows = 0, n_cols = 0, row_stride = 0;
    std::vector<uint8_t> bytes;
};

class Device {
public:
    // isa_level: passed to the context (the CPU backend's ISA level; -1 the best).
    Device(const pi_backend_ops *ops, int32_t device, int32_t isa_level, const std::string &label);
    ~Device();
    Device(const Device &) = delete;
    Device &operator=(const Device &) = delete;

    const pi_backend_ops &ops() const { return *ops_; }
    pi_bk_queue *queue() const { return queue_; }
    const std::string &label() const { return label_; }

    // Throws BackendFailure("<label> <what>: <last_error>") when status != PI_BK_OK.
    void check(int32_t status, const char *what) const;

    void *alloc(size_t bytes);
    // A buffer holding a copy of host[0..bytes).
    void *put(const void *host, size_t bytes);
    template <typename T>
    T *put(const std::vector<T> &v) {
        return static_cast<T *>(put(v.data(), v.size() * sizeof(T)));
    }
    pi_bk_matrix put(const HostMatrix &m);
    // Copies back after finishing the queue's work.
    void get(void *host, const void *device, size_t bytes);
    template <typename T>
    std::vector<T> get(const T *device, size_t count) {
        std::vector<T> v(count);
        get(v.data(), device, count * sizeof(T));
        return v;
    }
    void synchronize();
    // Frees the buffers of the current case.
    void release();

private:
    const pi_backend_ops *ops_;
    std::string label_;
    pi_bk_context *ctx_ = nullptr;
    pi_bk_queue *queue_ = nullptr;
    std::vector<pi_bk_buffer *> buffers_;
};

}  // namespace pi::conformance
