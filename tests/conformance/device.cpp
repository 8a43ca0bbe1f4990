#include "device.h"

namespace pi::conformance {

Device::Device(const pi_backend_ops *ops, int32_t device, int32_t isa_level, const std::string &label)
    : ops_(ops), label_(label) {
    pi_bk_context_params p{};
    p.struct_size = sizeof p;
    p.device = device;
    p.n_threads = 2;
    p.isa_level = isa_level;
    check(ops_->context_create(&p, &ctx_), "context_create");
    const int32_t s = ops_->queue_create(ctx_, &queue_);
    if (s != PI_BK_OK) {
        const std::string msg = label_ + " queue_create: " + ops_->last_error();
        ops_->context_free(ctx_);
        throw BackendFailure(msg);
    }
}

Device::~Device() {
    release();
    if (queue_) ops_->queue_free(queue_);
    if (ctx_) ops_->context_free(ctx_);
}

void Device::check(int32_t status, const char *what) const {
    if (status != PI_BK_OK) {
        throw BackendFailure(label_ + " " + what + " (status " + std::to_string(status) + "): " + ops_->last_error());
    }
}

void *Device::alloc(size_t bytes) {
    pi_bk_buffer *b = nullptr;
    check(ops_->buffer_alloc(ctx_, bytes ? bytes : 1, PI_BK_MEMORY_DEVICE, &b), "buffer_alloc");
    buffers_.push_back(b);
    return ops_->buffer_address(b);
}

void *Device::put(const void *host, size_t bytes) {
    void *d = alloc(bytes);
    check(ops_->copy_to_device(queue_, d, host, bytes), "copy_to_device");
    return d;
}

pi_bk_matrix Device::put(const HostMatrix &m) {
    pi_bk_matrix d{};
    d.data = put(m.bytes.data(), m.bytes.size());
    d.type = m.type;
    d.n_rows = m.n_rows;
    d.n_cols = m.n_cols;
    d.row_stride = m.row_stride;
    return d;
}

void Device::get(void *host, const void *device, size_t bytes) {
    check(ops_->copy_to_host(queue_, host, device, bytes), "copy_to_host");
    synchronize();
}

void Device::synchronize() { check(ops_->queue_synchronize(queue_), "queue_synchronize"); }

void Device::release() {
    if (queue_) ops_->queue_synchronize(queue_);  // nothing in flight may still use a buffer
    for (pi_bk_buffer *b : buffers_) ops_->buffer_free(b);
    buffers_.clear();
}

}  // namespace pi::conformance
