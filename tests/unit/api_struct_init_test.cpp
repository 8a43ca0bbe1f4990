// The *_init rule of the ABI (docs/API_GUIDELINES.md): an init call writes exactly as many bytes as the caller's
// struct has. Programs built against 0.1.0 reach the unsized symbols, which must fill only the 0.1.0 layout; newer
// programs reach *_init_sized through the header's macros with their own sizeof.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "powerinfer/powerinfer.h"

namespace {

constexpr uint8_t kGuard = 0xAB;

// A buffer of `size` bytes followed by guard bytes, all set to kGuard first.
struct Guarded {
    explicit Guarded(size_t size) : bytes(size + 64, kGuard), size(size) {}
    void *data() { return bytes.data(); }
    bool tail_untouched() const {
        for (size_t i = size; i < bytes.size(); ++i) {
            if (bytes[i] != kGuard) return false;
        }
        return true;
    }
    uint32_t struct_size() const {
        uint32_t v;
        std::memcpy(&v, bytes.data(), sizeof v);
        return v;
    }
    alignas(16) std::vector<uint8_t> bytes;
    size_t size;
};

}  // namespace

TEST_CASE("0.1.0 init entry points write only the 0.1.0 layout", "[api][abi]") {
    Guarded mp(56), sp(56), mi(96);
    (pi_model_params_init)(static_cast<pi_model_params *>(mp.data()));
    (pi_session_params_init)(static_cast<pi_session_params *>(sp.data()));
    (pi_model_info_init)(static_cast<pi_model_info *>(mi.data()));
    CHECK(mp.tail_untouched());
    CHECK(sp.tail_untouched());
    CHECK(mi.tail_untouched());
    CHECK(mp.struct_size() == 56);
    CHECK(sp.struct_size() == 56);
    CHECK(mi.struct_size() == 96);
    const pi_model_params *p = static_cast<const pi_model_params *>(mp.data());
    CHECK(std::string(p->backend) == "auto");
    CHECK(p->use_mmap == 1);
}

TEST_CASE("sized init writes min(size, sizeof) bytes and records that size", "[api][abi]") {
    for (size_t size : {size_t(4), size_t(56), sizeof(pi_model_params), sizeof(pi_model_params) + 40}) {
        Guarded g(size);
        pi_model_params_init_sized(static_cast<pi_model_params *>(g.data()), size);
        CHECK(g.tail_untouched());
        CHECK(g.struct_size() == std::min(size, sizeof(pi_model_params)));
    }
    Guarded tiny(3);
    pi_session_params_init_sized(static_cast<pi_session_params *>(tiny.data()), 3);
    CHECK(tiny.bytes[0] == kGuard);  // too small to hold struct_size: nothing written
    pi_model_params_init_sized(nullptr, sizeof(pi_model_params));  // no-op
    pi_placement_info_init_sized(nullptr, 64);

    // The macros pass this header's sizeof.
    pi_session_params sp;
    pi_session_params_init(&sp);
    CHECK(sp.struct_size == sizeof sp);
    CHECK(sp.sparse == PI_SPARSE_AUTO);
    pi_placement_layer_info li;
    pi_placement_layer_info_init(&li);
    CHECK(li.struct_size == sizeof li);
}

TEST_CASE("a 0.1.0-sized params struct loads with the defaults of the later fields", "[api][abi]") {
    Guarded sp(56);
    (pi_session_params_init)(static_cast<pi_session_params *>(sp.data()));
    pi_session_params full;
    std::memcpy(&full, sp.data(), 56);  // what the library may read: the caller's 56 bytes
    CHECK(full.struct_size == 56);
    CHECK(full.kv_type == PI_KV_F16);
}
