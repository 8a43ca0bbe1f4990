#include "gguf/gguf_types.h"

namespace pi::gguf {

namespace {

struct TypeLayout {
    TensorType type;
    const char *name;
    size_t block_weights;
    size_t block_bytes;
};

// ggml's block layouts (ggml-common.h; the same numbers as GGML_QUANT_SIZES in the `gguf` Python package). The
// unsupported types are listed only so that their files can still be bounds-checked and named in messages.
constexpr TypeLayout kLayouts[] = {
    {TensorType::F32, "F32", 1, 4},
    {TensorType::F16, "F16", 1, 2},
    {TensorType::Q4_0, "Q4_0", 32, 18},
    {TensorType::Q4_1, "Q4_1", 32, 20},
    {TensorType::Q5_0, "Q5_0", 32, 22},
    {TensorType::Q5_1, "Q5_1", 32, 24},
    {TensorType::Q8_0, "Q8_0", 32, 34},
    {TensorType::Q8_1, "Q8_1", 32, 40},
    {TensorType::Q2_K, "Q2_K", 256, 84},
    {TensorType::Q3_K, "Q3_K", 256, 110},
    {TensorType::Q4_K, "Q4_K", 256, 144},
    {TensorType::Q5_K, "Q5_K", 256, 176},
    {TensorType::Q6_K, "Q6_K", 256, 210},
    {TensorType::Q8_K, "Q8_K", 256, 292},
    {TensorType::IQ2_XXS, "IQ2_XXS", 256, 66},
    {TensorType::IQ2_XS, "IQ2_XS", 256, 74},
    {TensorType::IQ3_XXS, "IQ3_XXS", 256, 98},
    {TensorType::IQ1_S, "IQ1_S", 256, 50},
    {TensorType::IQ4_NL, "IQ4_NL", 32, 18},
    {TensorType::IQ3_S, "IQ3_S", 256, 110},
    {TensorType::IQ2_S, "IQ2_S", 256, 82},
    {TensorType::IQ4_XS, "IQ4_XS", 256, 136},
    {TensorType::I8, "I8", 1, 1},
    {TensorType::I16, "I16", 1, 2},
    {TensorType::I32, "I32", 1, 4},
    {TensorType::I64, "I64", 1, 8},
    {TensorType::F64, "F64", 1, 8},
    {TensorType::IQ1_M, "IQ1_M", 256, 56},
    {TensorType::BF16, "BF16", 1, 2},
    {TensorType::TQ1_0, "TQ1_0", 256, 54},
    {TensorType::TQ2_0, "TQ2_0", 256, 66},
    {TensorType::MXFP4, "MXFP4", 32, 17},
};

const TypeLayout *find_layout(TensorType type) {
    for (const TypeLayout &layout : kLayouts) {
        if (layout.type == type) return &layout;
    }
    return nullptr;
}

constexpr const char *kValueTypeNames[] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};

}  // namespace

std::string tensor_type_name(TensorType type) {
    const TypeLayout *layout = find_layout(type);
    if (layout != nullptr) return layout->name;
    return "type " + std::to_string(static_cast<uint32_t>(type));
}

bool tensor_type_supported(TensorType type) {
    switch (type) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
    case TensorType::Q8_0:
    case TensorType::Q4_0:
        return true;
    default:
        return false;
    }
}

bool tensor_type_known(TensorType type) { return find_layout(type) != nullptr; }

size_t tensor_type_block_weights(TensorType type) {
    const TypeLayout *layout = find_layout(type);
    return layout != nullptr ? layout->block_weights : 0;
}

size_t tensor_type_block_bytes(TensorType type) {
    const TypeLayout *layout = find_layout(type);
    return layout != nullptr ? layout->block_bytes : 0;
}

bool value_type_known(ValueType type) {
    return static_cast<uint32_t>(type) < sizeof(kValueTypeNames) / sizeof(kValueTypeNames[0]);
}

std::string value_type_name(ValueType type) {
    if (value_type_known(type)) return kValueTypeNames[static_cast<uint32_t>(type)];
    return "value type " + std::to_string(static_cast<uint32_t>(type));
}

}  // namespace pi::gguf
