#include "planner/device_reservation.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"

namespace pi::planner {
namespace {

std::string mib(uint64_t bytes) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / (1024.0 * 1024.0));
    return buf;
}

}  // namespace

DeviceReservation::DeviceReservation(const Placement &placement, const ModelObjects &objects, DeviceAllocator &device)
    : objects_(objects), device_(device) {
    if (placement.layers.size() != objects.layers.size()) {
        fail(PI_ERR_INVALID_ARGUMENT, "device reservation: the placement has " + std::to_string(placement.layers.size()) +
                                          " layers but the model " + std::to_string(objects.layers.size()));
    }
    // The plan counted one alignment of padding per allocation; a device rounding to more would break the promise.
    if (device.alignment() == 0 || objects.alignment % device.alignment() != 0) {
        fail(PI_ERR_INVALID_ARGUMENT, "device reservation: the device rounds allocations to " +
                                          std::to_string(device.alignment()) + " bytes, the plan to " +
                                          std::to_string(objects.alignment));
    }
    try {
        allocate_model(placement);
    } catch (...) {
        free_all();
        throw;
    }
}

DeviceReservation::~DeviceReservation() { free_all(); }

void DeviceReservation::allocate_model(const Placement &placement) {
    const uint64_t align = objects_.alignment;
    auto take = [&](uint64_t bytes, const std::string &what) {
        if (bytes == 0) return;
        bytes = align_up(bytes, align);
        model_allocations_.push_back(device_.allocate(bytes, what));
        model_bytes_ += bytes;
    };
    for (size_t l = 0; l < placement.layers.size(); ++l) {
        const LayerPlacement &lp = placement.layers[l];
        if (!lp.attention_on_gpu) continue;
        const LayerObjects &o = objects_.layers[l];
        const std::string layer = "layer " + std::to_string(l);
        kv_layers_.push_back(static_cast<uint32_t>(l));
        take(o.attention_block, layer + " attention and predictor");
        for (size_t m = 0; m < o.neuron_rows.size(); ++m) {
            take(uint64_t(lp.n_gpu_neurons) * o.neuron_rows[m],
                 layer + " FFN matrix " + std::to_string(m) + ", " + std::to_string(lp.n_gpu_neurons) + " hot rows");
        }
        slot_bytes_ += kv_allocation_bytes(o, objects_.plan_n_ctx, align);
    }
    if (placement.output_on_gpu) take(objects_.output_block, "output head");
    if (placement.gpu_bytes > 0) take(objects_.scratch, "scratch");
    free_slots_ = kv_layers_.empty() ? 0 : objects_.plan_n_sessions;
}

void DeviceReservation::free_all() noexcept {
    for (Session &s : sessions_) {
        for (uint64_t id : s.allocations) device_.release(id);
    }
    sessions_.clear();
    slot_sessions_bytes_ = 0;
    for (uint64_t id : model_allocations_) device_.release(id);
    model_allocations_.clear();
    model_bytes_ = 0;
}

uint64_t DeviceReservation::session_bytes(uint32_t n_ctx) const {
    uint64_t total = 0;
    for (uint32_t l : kv_layers_) total += kv_allocation_bytes(objects_.layers[l], n_ctx, objects_.alignment);
    return total;
}

uint64_t DeviceReservation::unpromised_bytes() const {
    // Every slot counts at its full size, held or not: a session in a slot may use less than the slot now, but the
    // slot must stay whole for the next session that takes it after this one is freed.
    const uint64_t n_slots = kv_layers_.empty() ? 0 : objects_.plan_n_sessions;
    const uint64_t promised = device_.used() - slot_sessions_bytes_ + n_slots * slot_bytes_;
    return device_.capacity() > promised ? device_.capacity() - promised : 0;
}

DeviceReservation::SessionKv DeviceReservation::reserve_session(uint32_t n_ctx) {
    if (n_ctx == 0) fail(PI_ERR_INVALID_ARGUMENT, "session KV reservation: n_ctx must be >= 1");
    Session s;
    s.id = next_session_id_++;
    const uint64_t need = session_bytes(n_ctx);
    if (need > 0) {
        s.slot = free_slots_ > 0 && n_ctx <= objects_.plan_n_ctx;
        if (!s.slot && need > unpromised_bytes()) {
            fail(PI_ERR_OUT_OF_MEMORY,
                 "session of " + std::to_string(n_ctx) + " tokens: its KV cache needs " + mib(need) +
                     " on the GPU (" + std::to_string(kv_layers_.size()) + " layers with attention there), but only " +
                     mib(unpromised_bytes()) + " of the " + mib(device_.capacity()) +
                     " budget are left beyond the reservation for " + std::to_string(objects_.plan_n_sessions) +
                     " session(s) of " + std::to_string(objects_.plan_n_ctx) + " tokens (" +
                     std::to_string(free_slots_) + " of them free" +
                     (n_ctx > objects_.plan_n_ctx ? ", but this session is longer" : "") +
                     "); raise plan_n_ctx / plan_n_sessions or the VRAM budget");
        }
        try {
            for (uint32_t l : kv_layers_) {
                s.allocations.push_back(device_.allocate(kv_allocation_bytes(objects_.layers[l], n_ctx, objects_.alignment),
                                                         "session KV cache, layer " + std::to_string(l)));
            }
        } catch (...) {
            for (uint64_t id : s.allocations) device_.release(id);
            throw;
        }
        if (s.slot) {
            --free_slots_;
            slot_sessions_bytes_ += need;
        }
        s.bytes = need;
    }
    sessions_.push_back(std::move(s));
    return SessionKv{sessions_.back().id};
}

void DeviceReservation::release_session(SessionKv session) noexcept {
    auto it = std::find_if(sessions_.begin(), sessions_.end(), [&](const Session &s) { return s.id == session.id; });
    if (session.id == 0 || it == sessions_.end()) return;
    for (uint64_t id : it->allocations) device_.release(id);
    if (it->slot) {
        ++free_slots_;
        slot_sessions_bytes_ -= it->bytes;
    }
    sessions_.erase(it);
}

}  // namespace pi::planner
