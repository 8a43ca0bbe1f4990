// A parsed GGUF file: metadata, tensor infos and views of the tensor data.
//
// Reads GGUF v2 and v3 with magic "GGUF" or PowerInfer's "PWRI". The file is mapped (or, without mmap, read into
// memory); every count, offset and size from the file is checked against the file's size before use, so a truncated
// or corrupt file raises pi::Error(PI_ERR_FORMAT) with a message that names what is wrong, never a crash.
//
// Limits beyond the format's own rules (all PI_ERR_FORMAT): at most 4 dimensions per tensor (ggml's GGML_MAX_DIMS),
// no zero dimension, arrays nested at most kMaxArrayDepth deep, no duplicate keys or tensor names, tensors must not
// overlap, and each tensor's data plus its padding to the alignment must lie inside the file (ggml's reader asks
// the same). A file without tensors may end right after its metadata.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gguf/gguf_types.h"

namespace pi::gguf {

// One metadata value. Arrays hold their elements (which may themselves be arrays) in `items`.
struct Value {
    ValueType type = ValueType::UINT8;
    uint64_t u = 0;      // UINT8/16/32/64, BOOL (0 or 1)
    int64_t i = 0;       // INT8/16/32/64
    double f = 0.0;      // FLOAT32/64
    std::string str;     // STRING
    ValueType elem_type = ValueType::UINT8;  // ARRAY: type of the elements
    std::vector<Value> items;                // ARRAY: the elements

    bool is_integer() const;
    bool is_number() const;  // integer or float
};

struct TensorInfo {
    std::string name;
    std::vector<uint64_t> dims;  // ggml order: dims[0] is the innermost (contiguous) dimension
    TensorType type = TensorType::F32;
    uint64_t offset = 0;         // from the start of the data section
    uint64_t n_elements = 0;
    uint64_t n_bytes = 0;

    uint64_t rows() const;       // product of dims[1..]
    uint64_t row_elements() const { return dims.empty() ? 0 : dims[0]; }
};

// Arrays of arrays may nest this deep (an array of scalars has depth 1); deeper files are rejected so that a
// malicious file cannot exhaust the stack.
constexpr int kMaxArrayDepth = 8;
// ggml's GGML_MAX_DIMS.
constexpr uint32_t kMaxDims = 4;
// Default cap on the number of metadata values in a file, array elements included. Real vocabularies hold a few
// million; the cap keeps a corrupt array count in a multi-GB file from turning into hundreds of GB of Values (each
// element costs about 100 bytes in memory against 1 byte in the file).
constexpr uint64_t kMaxMetadataValues = uint64_t(1) << 23;

struct OpenOptions {
    bool use_mmap = true;
    // With use_mmap: map every page up front (MAP_POPULATE; from the page cache, reading what is not there yet),
    // so that inference does not take a page fault per first touch. A sparse decode touches a few thousand random
    // rows per token: on a 16-thread hybrid run the faults of the cold rows took 25 ms per token (bench-7b, H100
    // machine) against 2 ms with the pages mapped. Off for readers of metadata only (the planner).
    bool populate = false;
    // false: a tensor of a type the engine cannot compute with (see tensor_type_supported) raises
    // pi::Error(PI_ERR_UNSUPPORTED) naming the type and the tensor. true: such files open (for tools).
    bool allow_unsupported_types = false;
    // More metadata values than this (array elements included) raise PI_ERR_FORMAT.
    uint64_t max_metadata_values = kMaxMetadataValues;
};

class File {
public:
    // Throws pi::Error: PI_ERR_IO (cannot open/read), PI_ERR_FORMAT (corrupt), PI_ERR_UNSUPPORTED (tensor types,
    // versions other than 2 and 3).
    static std::unique_ptr<File> open(const std::string &path, const OpenOptions &options = {});
    // Parses bytes the caller keeps alive for the File's lifetime (tests, fuzzing). No copy.
    static std::unique_ptr<File> from_memory(const void *data, size_t size, const OpenOptions &options = {});

    ~File();
    File(const File &) = delete;
    File &operator=(const File &) = delete;

    uint32_t version() const { return version_; }
    bool is_pwri() const { return is_pwri_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }  // start of the data section in the file
    // The path given to open(), or "<memory>"; every message starts with it.
    const std::string &name() const { return name_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>> &metadata() const { return metadata_; }
    const Value *find(std::string_view key) const;

    // Typed getters. Missing key: the *_or variants return the fallback, the others throw PI_ERR_FORMAT naming the
    // key. Present with an incompatible type: PI_ERR_FORMAT naming the key, the expected and the actual type.
    // Integer getters accept any integer type whose value fits; float getters accept any number.
    std::string get_string(std::string_view key) const;
    std::string get_string_or(std::string_view key, const std::string &fallback) const;
    uint64_t get_uint(std::string_view key) const;
    uint64_t get_uint_or(std::string_view key, uint64_t fallback) const;
    int64_t get_int_or(std::string_view key, int64_t fallback) const;
    double get_float(std::string_view key) const;
    double get_float_or(std::string_view key, double fallback) const;
    bool get_bool_or(std::string_view key, bool fallback) const;
    // Arrays of a given element type (PI_ERR_FORMAT on mismatch); empty optional when the key is missing.
    std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
    std::optional<std::vector<double>> get_float_array(std::string_view key) const;  // any numeric element type
    std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;   // any integer element type

    const std::vector<TensorInfo> &tensors() const { return tensors_; }
    const TensorInfo *find_tensor(std::string_view name) const;
    // Pointer to the tensor's bytes (n_bytes long, inside the mapping). Tensor data are aligned in memory to
    // min(alignment(), 64) at least (mmap: page-aligned base; read path: a 64-byte aligned buffer; from_memory: as
    // aligned as the caller's bytes).
    const uint8_t *tensor_data(const TensorInfo &tensor) const;

private:
    File() = default;
    void parse(const OpenOptions &options);
    void read_whole_file(int fd, uint64_t size);
    [[noreturn]] void fail_metadata(std::string_view key, const std::string &problem) const;
    const Value &require(std::string_view key) const;

    // Storage: either a mapping we own, a heap buffer we own, or caller memory.
    void *mapping_ = nullptr;
    size_t mapping_size_ = 0;
    // Read path: anonymous memory holding the file (page-aligned), with transparent huge pages requested: decode
    // streams every weight once per token, and 2 MiB pages spare it a TLB miss every 4 KiB.
    void *buffer_ = nullptr;
    size_t buffer_size_ = 0;
    const uint8_t *bytes_ = nullptr;
    uint64_t size_ = 0;

    uint32_t version_ = 0;
    bool is_pwri_ = false;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> metadata_;
    std::vector<TensorInfo> tensors_;
    std::string name_;
    // Indexes into metadata_ and tensors_; the views point into their strings (never modified after parse).
    std::unordered_map<std::string_view, size_t> key_index_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace pi::gguf
