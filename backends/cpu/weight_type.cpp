#include "backends/cpu/weight_type.h"

#include <string>

#include "common/error.h"

namespace pi::cpu {

const char *weight_type_name(WeightType type) {
    switch (type) {
        case WeightType::F32: return "F32";
        case WeightType::F16: return "F16";
        case WeightType::BF16: return "BF16";
        case WeightType::Q8_0: return "Q8_0";
        case WeightType::Q4_0: return "Q4_0";
        case WeightType::Q4_0R: return "Q4_0R";
        case WeightType::F16X8: return "F16X8";
        case WeightType::Q4_0X8: return "Q4_0X8";
    }
    return "unknown";
}

bool weight_type_valid(WeightType type) {
    switch (type) {
        case WeightType::F32:
        case WeightType::F16:
        case WeightType::BF16:
        case WeightType::Q8_0:
        case WeightType::Q4_0:
        case WeightType::Q4_0R:
        case WeightType::F16X8:
        case WeightType::Q4_0X8: return true;
    }
    return false;
}

size_t weight_type_block_weights(WeightType type) { return weight_type_is_quantized(type) ? 32 : 1; }

size_t weight_row_bytes(WeightType type, size_t n) {
    switch (type) {
        case WeightType::F32: return n * 4;
        case WeightType::F16:
        case WeightType::BF16: return n * 2;
        case WeightType::F16X8:
            if (n % 64 != 0) {
                fail(PI_ERR_INVALID_ARGUMENT, "an F16X8 row of " + std::to_string(n) + " weights is not a whole number "
                                              "of 64-weight steps");
            }
            return n * 2;
        case WeightType::Q8_0:
        case WeightType::Q4_0:
        case WeightType::Q4_0R:
        case WeightType::Q4_0X8:
            if (n % 32 != 0) {
                fail(PI_ERR_INVALID_ARGUMENT, std::string("a ") + weight_type_name(type) + " row of " +
                                                  std::to_string(n) + " weights is not a whole number of 32-blocks");
            }
            return n / 32 * (type == WeightType::Q8_0 ? 34 : 18);
    }
    fail(PI_ERR_INVALID_ARGUMENT, "unknown weight type id " + std::to_string(static_cast<uint32_t>(type)));
}

WeightMatrix make_weight_matrix(const void *data, WeightType type, size_t n_rows, size_t n_cols) {
    WeightMatrix w;
    w.data = data;
    w.type = type;
    w.n_rows = n_rows;
    w.n_cols = n_cols;
    w.row_stride = weight_row_bytes(type, n_cols);
    return w;
}

void check_weight_matrix(const WeightMatrix &w, const char *what) {
    if (!weight_type_valid(w.type)) {
        fail(PI_ERR_INVALID_ARGUMENT,
             std::string(what) + ": unknown weight type id " + std::to_string(static_cast<uint32_t>(w.type)));
    }
    const size_t row_bytes = weight_row_bytes(w.type, w.n_cols);
    if (w.n_rows > 0 && w.data == nullptr) fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": no weight data");
    if (w.n_rows > 1 && w.row_stride < row_bytes) {
        fail(PI_ERR_INVALID_ARGUMENT, std::string(what) + ": row stride " + std::to_string(w.row_stride) +
                                          " is shorter than a row (" + std::to_string(row_bytes) + " bytes)");
    }
}

}  // namespace pi::cpu
