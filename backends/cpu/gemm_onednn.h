// Internal: the single-threaded oneDNN matmul on one panel that Gemm runs from each pool thread. Built from
// gemm_onednn.cpp when PI_ONEDNN is on, else from gemm_onednn_stub.cpp (which has none), so gemm.cpp needs no #if.
#pragma once

#include <cstddef>
#include <memory>

namespace pi::cpu::detail {

enum class PanelType { F32, BF16 };

class OnednnPanelMatmul {
public:
    virtual ~OnednnPanelMatmul() = default;
    // y[t * ldy + j] = sum over c < k of x[t * ldx + c] * w[j * ldw + c], for t < m, j < n. x and w hold `type`
    // (bf16 as uint16_t bits), y is f32. Runs on the calling thread only; several threads may call at once.
    // Throws pi::Error(PI_ERR_BACKEND) when oneDNN fails.
    virtual void run(PanelType type, const void *x, size_t m, size_t k, size_t ldx, const void *w, size_t n, size_t ldw,
                     float *y, size_t ldy) = 0;
};

// The oneDNN panel matmul, or nullptr when this build has no oneDNN.
std::unique_ptr<OnednnPanelMatmul> make_onednn_panel_matmul();
bool onednn_compiled();

}  // namespace pi::cpu::detail
