// Built instead of gemm_onednn.cpp when PI_ONEDNN is off: Gemm then always takes its blocked fallback.
#include "backends/cpu/gemm_onednn.h"

namespace pi::cpu::detail {

std::unique_ptr<OnednnPanelMatmul> make_onednn_panel_matmul() { return nullptr; }
bool onednn_compiled() { return false; }

}  // namespace pi::cpu::detail
