// The budget promise made concrete: allocates on a device exactly what a Placement puts there, and the KV cache of
// each session, so that the device never sees more than the VRAM budget (DESIGN §6: "what the planner promises is
// what the library allocates").
//
//   DeviceReservation r(placement, objects, device);  // weights' places, output head, scratch
//   SessionKv kv = r.reserve_session(n_ctx);          // the KV cache of the GPU layers for one session
//   r.release_session(kv);
//
// Sessions: the plan reserved plan_n_sessions slots of plan_n_ctx tokens. A session with n_ctx <= plan_n_ctx takes
// a free slot and always fits. A session beyond the slots, or with a longer context, is admitted only if its KV
// fits the memory nobody was promised (unpromised_bytes()); otherwise PI_ERR_OUT_OF_MEMORY names what was
// asked and what is left. So an admitted extra session can never take memory a reserved one was promised.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "planner/model_problem.h"
#include "planner/placement.h"

namespace pi::planner {

// What the reservation needs of a device: an allocator that accounts bytes. The GPU backends' buffers and the
// simulated device (backends/sim) implement it.
class DeviceAllocator {
public:
    virtual ~DeviceAllocator() = default;
    // Allocates `bytes` (rounded up to alignment()); `what` names the object for messages. Returns an id for
    // release(). Throws pi::Error(PI_ERR_OUT_OF_MEMORY) when it does not fit.
    virtual uint64_t allocate(uint64_t bytes, const std::string &what) = 0;
    virtual void release(uint64_t id) noexcept = 0;
    virtual uint64_t capacity() const = 0;   // the budget
    virtual uint64_t used() const = 0;       // bytes allocated now, rounding included
    virtual uint64_t alignment() const = 0;  // allocations are rounded up to this
};

class DeviceReservation {
public:
    struct SessionKv {
        uint64_t id = 0;  // 0: none
    };

    // Allocates the model's share: per layer with attention on the device its attention block, and the hot rows of
    // each FFN matrix (one allocation per matrix); the output head when the plan puts it there; scratch when
    // anything is on the device. On failure frees what it took and rethrows. PI_ERR_INVALID_ARGUMENT when the
    // placement and the objects disagree (layer counts) or the device rounds to more than objects.alignment.
    DeviceReservation(const Placement &placement, const ModelObjects &objects, DeviceAllocator &device);
    ~DeviceReservation();  // frees the sessions still held and the model's share
    DeviceReservation(const DeviceReservation &) = delete;
    DeviceReservation &operator=(const DeviceReservation &) = delete;

    // The KV cache of one session with n_ctx tokens (see the class comment). Throws PI_ERR_OUT_OF_MEMORY with a
    // message naming n_ctx, the bytes needed and the bytes left; PI_ERR_INVALID_ARGUMENT for n_ctx == 0.
    SessionKv reserve_session(uint32_t n_ctx);
    void release_session(SessionKv session) noexcept;  // unknown or zero ids are ignored

    uint64_t session_bytes(uint32_t n_ctx) const;  // a session's KV on the device, as allocated
    uint64_t model_bytes() const { return model_bytes_; }
    uint32_t free_slots() const { return free_slots_; }
    // Bytes a session beyond the reservation may still take: the capacity less the model's share, the sessions
    // beyond the reservation and every slot at its full size (held or free).
    uint64_t unpromised_bytes() const;

private:
    struct Session {
        uint64_t id = 0;
        bool slot = false;                 // holds one of the plan_n_sessions slots
        uint64_t bytes = 0;                // its KV on the device
        std::vector<uint64_t> allocations;
    };

    void allocate_model(const Placement &placement);
    void free_all() noexcept;

    ModelObjects objects_;  // a copy: the reservation outlives whatever built it
    DeviceAllocator &device_;
    std::vector<uint32_t> kv_layers_;       // layers whose attention (and KV) is on the device
    std::vector<uint64_t> model_allocations_;
    uint64_t model_bytes_ = 0;
    uint64_t slot_bytes_ = 0;                // one session of plan_n_ctx tokens
    uint32_t free_slots_ = 0;
    uint64_t slot_sessions_bytes_ = 0;       // KV of the sessions holding slots (each at most slot_bytes_)
    std::vector<Session> sessions_;
    uint64_t next_session_id_ = 1;
};

}  // namespace pi::planner
