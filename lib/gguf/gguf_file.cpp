#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>

#include "common/error.h"
#include "gguf/gguf_parser.h"

namespace pi::gguf {

namespace {

// Alignment of the read path's buffer: enough for any SIMD load of tensor data.
constexpr uintptr_t kBufferAlignment = 64;

class FdGuard {
public:
    explicit FdGuard(int fd) : fd_(fd) {}
    ~FdGuard() {
        if (fd_ >= 0) ::close(fd_);
    }
    FdGuard(const FdGuard &) = delete;
    FdGuard &operator=(const FdGuard &) = delete;

private:
    int fd_;
};

std::string errno_text(int err) { return std::strerror(err); }

bool is_signed_integer(ValueType t) {
    return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 || t == ValueType::INT64;
}

std::string type_text(const Value &v) {
    if (v.type == ValueType::ARRAY) return "ARRAY of " + value_type_name(v.elem_type);
    return value_type_name(v.type);
}

}  // namespace

bool Value::is_integer() const {
    switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64:
        return true;
    default:
        return false;
    }
}

bool Value::is_number() const { return is_integer() || type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

uint64_t TensorInfo::rows() const {
    if (dims.empty()) return 0;
    uint64_t n = 1;
    for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];  // the reader checked that the product fits
    return n;
}

std::unique_ptr<File> File::open(const std::string &path, const OpenOptions &options) {
    std::unique_ptr<File> file(new File());
    file->name_ = path;

    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(PI_ERR_IO, path + ": cannot open: " + errno_text(errno));
    FdGuard guard(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) fail(PI_ERR_IO, path + ": cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) fail(PI_ERR_IO, path + ": not a regular file");
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size > std::numeric_limits<size_t>::max() - kBufferAlignment) {
        fail(PI_ERR_IO, path + ": file of " + std::to_string(size) + " bytes does not fit the address space");
    }

    if (options.use_mmap && size > 0) {
        const int flags = MAP_PRIVATE | (options.populate ? MAP_POPULATE : 0);
        void *p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, flags, fd, 0);
        // When mapping fails (filesystems without mmap, address-space limits) we fall back to reading.
        if (p != MAP_FAILED) {
            file->mapping_ = p;
            file->mapping_size_ = static_cast<size_t>(size);
            file->bytes_ = static_cast<const uint8_t *>(p);
        }
    }
    if (file->mapping_ == nullptr) {
        try {
            file->read_whole_file(fd, size);
        } catch (const std::bad_alloc &) {
            fail(PI_ERR_OUT_OF_MEMORY, path + ": cannot allocate " + std::to_string(size) + " bytes to read it");
        }
    }
    file->size_ = size;
    file->parse(options);
    return file;
}

std::unique_ptr<File> File::from_memory(const void *data, size_t size, const OpenOptions &options) {
    std::unique_ptr<File> file(new File());
    file->name_ = "<memory>";
    static const uint8_t kEmpty = 0;
    file->bytes_ = data != nullptr ? static_cast<const uint8_t *>(data) : &kEmpty;
    file->size_ = data != nullptr ? size : 0;
    file->parse(options);
    return file;
}

File::~File() {
    if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
    if (buffer_ != nullptr) ::munmap(buffer_, buffer_size_);
}

void File::read_whole_file(int fd, uint64_t size) {
    const size_t bytes = std::max<size_t>(static_cast<size_t>(size), 1);
    void *p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    buffer_ = p;
    buffer_size_ = bytes;
#ifdef MADV_HUGEPAGE
    ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without THP support the pages stay 4 KiB
#endif
    uint8_t *dst = static_cast<uint8_t *>(p);
    uint64_t done = 0;
    while (done < size) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - done, uint64_t(1) << 30));
        ssize_t n = ::pread(fd, dst + done, chunk, static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(PI_ERR_IO, name_ + ": read failed at offset " + std::to_string(done) + ": " + errno_text(errno));
        }
        if (n == 0) {
            fail(PI_ERR_IO, name_ + ": file shrank while reading (" + std::to_string(done) + " of " +
                                std::to_string(size) + " bytes)");
        }
        done += static_cast<uint64_t>(n);
    }
    bytes_ = dst;
}

void File::parse(const OpenOptions &options) {
    ParsedGguf parsed;
    try {
        parsed = parse_gguf(bytes_, size_, name_, options);
    } catch (const std::bad_alloc &) {
        fail(PI_ERR_OUT_OF_MEMORY, name_ + ": out of memory while reading the metadata");
    }
    version_ = parsed.version;
    is_pwri_ = parsed.is_pwri;
    alignment_ = parsed.alignment;
    data_offset_ = parsed.data_offset;
    metadata_ = std::move(parsed.metadata);
    tensors_ = std::move(parsed.tensors);

    // Index after the vectors reached their final place: the views point into their strings.
    key_index_.reserve(metadata_.size());
    for (size_t i = 0; i < metadata_.size(); ++i) {
        auto [it, inserted] = key_index_.emplace(metadata_[i].first, i);
        if (!inserted) {
            fail(PI_ERR_FORMAT, name_ + ": duplicate metadata key " + quote_for_message(metadata_[i].first) +
                                    " (entries " + std::to_string(it->second) + " and " + std::to_string(i) + ")");
        }
    }
    tensor_index_.reserve(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
        auto [it, inserted] = tensor_index_.emplace(tensors_[i].name, i);
        if (!inserted) {
            fail(PI_ERR_FORMAT, name_ + ": duplicate tensor name " + quote_for_message(tensors_[i].name) +
                                    " (tensor infos " + std::to_string(it->second) + " and " + std::to_string(i) +
                                    ")");
        }
    }
}

const Value *File::find(std::string_view key) const {
    auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo *File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t *File::tensor_data(const TensorInfo &tensor) const {
    // The reader checked every tensor of this file; this catches a TensorInfo from another file.
    uint64_t data_size = size_ - std::min(size_, data_offset_);
    if (tensor.offset > data_size || tensor.n_bytes > data_size - tensor.offset) {
        fail(PI_ERR_INVALID_ARGUMENT, name_ + ": tensor " + quote_for_message(tensor.name) +
                                          " does not lie inside this file's data section");
    }
    return bytes_ + data_offset_ + tensor.offset;
}

void File::fail_metadata(std::string_view key, const std::string &problem) const {
    fail(PI_ERR_FORMAT, name_ + ": metadata key " + quote_for_message(key) + " " + problem);
}

const Value &File::require(std::string_view key) const {
    const Value *v = find(key);
    if (v == nullptr) fail(PI_ERR_FORMAT, name_ + ": missing metadata key " + quote_for_message(key));
    return *v;
}

std::string File::get_string(std::string_view key) const {
    const Value &v = require(key);
    if (v.type != ValueType::STRING) fail_metadata(key, "has type " + type_text(v) + ", expected STRING");
    return v.str;
}

std::string File::get_string_or(std::string_view key, const std::string &fallback) const {
    return find(key) != nullptr ? get_string(key) : fallback;
}

uint64_t File::get_uint(std::string_view key) const {
    const Value &v = require(key);
    if (!v.is_integer()) fail_metadata(key, "has type " + type_text(v) + ", expected an unsigned integer");
    if (is_signed_integer(v.type)) {
        if (v.i < 0) fail_metadata(key, "is " + std::to_string(v.i) + ", expected an unsigned integer");
        return static_cast<uint64_t>(v.i);
    }
    return v.u;
}

uint64_t File::get_uint_or(std::string_view key, uint64_t fallback) const {
    return find(key) != nullptr ? get_uint(key) : fallback;
}

int64_t File::get_int_or(std::string_view key, int64_t fallback) const {
    const Value *v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_integer()) fail_metadata(key, "has type " + type_text(*v) + ", expected an integer");
    if (is_signed_integer(v->type)) return v->i;
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_metadata(key, "is " + std::to_string(v->u) + ", which does not fit a signed 64-bit integer");
    }
    return static_cast<int64_t>(v->u);
}

namespace {
double number_of(const Value &v) {
    if (v.type == ValueType::FLOAT32 || v.type == ValueType::FLOAT64) return v.f;
    if (is_signed_integer(v.type)) return static_cast<double>(v.i);
    return static_cast<double>(v.u);
}
}  // namespace

double File::get_float(std::string_view key) const {
    const Value &v = require(key);
    if (!v.is_number()) fail_metadata(key, "has type " + type_text(v) + ", expected a number");
    return number_of(v);
}

double File::get_float_or(std::string_view key, double fallback) const {
    return find(key) != nullptr ? get_float(key) : fallback;
}

bool File::get_bool_or(std::string_view key, bool fallback) const {
    const Value *v = find(key);
    if (v == nullptr) return fallback;
    if (v->type != ValueType::BOOL) fail_metadata(key, "has type " + type_text(*v) + ", expected BOOL");
    return v->u != 0;
}

std::optional<std::vector<std::string>> File::get_string_array(std::string_view key) const {
    const Value *v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING) {
        fail_metadata(key, "has type " + type_text(*v) + ", expected ARRAY of STRING");
    }
    std::vector<std::string> out;
    out.reserve(v->items.size());
    for (const Value &item : v->items) out.push_back(item.str);
    return out;
}

std::optional<std::vector<double>> File::get_float_array(std::string_view key) const {
    const Value *v = find(key);
    if (v == nullptr) return std::nullopt;
    Value probe;
    probe.type = v->elem_type;
    if (v->type != ValueType::ARRAY || !probe.is_number()) {
        fail_metadata(key, "has type " + type_text(*v) + ", expected an ARRAY of numbers");
    }
    std::vector<double> out;
    out.reserve(v->items.size());
    for (const Value &item : v->items) out.push_back(number_of(item));
    return out;
}

std::optional<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
    const Value *v = find(key);
    if (v == nullptr) return std::nullopt;
    Value probe;
    probe.type = v->elem_type;
    if (v->type != ValueType::ARRAY || !probe.is_integer()) {
        fail_metadata(key, "has type " + type_text(*v) + ", expected an ARRAY of integers");
    }
    std::vector<int64_t> out;
    out.reserve(v->items.size());
    for (size_t i = 0; i < v->items.size(); ++i) {
        const Value &item = v->items[i];
        if (is_signed_integer(item.type)) {
            out.push_back(item.i);
        } else if (item.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            fail_metadata(key, "element " + std::to_string(i) + " is " + std::to_string(item.u) +
                                   ", which does not fit a signed 64-bit integer");
        } else {
            out.push_back(static_cast<int64_t>(item.u));
        }
    }
    return out;
}

}  // namespace pi::gguf
