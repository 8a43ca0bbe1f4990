// A small GGUF v2/v3 writer, for tests and tools written in C++ (the Python tools use the `gguf` package).
//
// It writes what it is given: it checks that values fit their types and tensor sizes match their dims (both throw
// pi::Error(PI_ERR_INVALID_ARGUMENT)), but not duplicates, so tests can craft such files. Tensor data are laid out in
// the order added, each padded to the alignment (as ggml and the `gguf` package do). When the alignment is not 32
// and no `general.alignment` key was added, the writer adds it (UINT32) after the caller's metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"

namespace pi::gguf {

class Writer {
public:
    // version: 2 or 3 (same layout); alignment: a non-zero power of two. Otherwise PI_ERR_INVALID_ARGUMENT.
    explicit Writer(uint32_t version = 3, bool pwri_magic = false, uint64_t alignment = 32);

    void add(const std::string &key, const Value &value);
    void add_string(const std::string &key, const std::string &value);
    void add_uint32(const std::string &key, uint32_t value);
    void add_float32(const std::string &key, float value);
    // dims in ggml order (dims[0] innermost); n_bytes must equal the size of that many elements of `type`.
    void add_tensor(const std::string &name, TensorType type, const std::vector<uint64_t> &dims,
                    const void *data, size_t n_bytes);

    // The whole file as bytes.
    std::vector<uint8_t> to_bytes() const;
    // Throws pi::Error(PI_ERR_IO) on failure.
    void write_file(const std::string &path) const;

private:
    uint32_t version_;
    bool pwri_magic_;
    uint64_t alignment_;
    std::vector<std::pair<std::string, Value>> metadata_;
    struct PendingTensor {
        std::string name;
        TensorType type;
        std::vector<uint64_t> dims;
        std::vector<uint8_t> data;
    };
    std::vector<PendingTensor> tensors_;
};

// Convenience constructors for Values.
Value make_uint32(uint32_t v);
Value make_float32(float v);
Value make_string(std::string v);
Value make_array(ValueType elem_type, std::vector<Value> items);
Value make_uint(ValueType type, uint64_t v);  // UINT8/16/32/64
Value make_int(ValueType type, int64_t v);    // INT8/16/32/64
Value make_float64(double v);
Value make_bool(bool v);

}  // namespace pi::gguf
