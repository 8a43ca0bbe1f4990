// A growable, 64-byte aligned scratch array of trivially copyable values (SIMD loads of whole cache lines, no false
// sharing between threads' buffers). Contents are not preserved when it grows.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace pi::cpu {

template <typename T>
class AlignedBuffer {
    static_assert(std::is_trivially_copyable<T>::value, "AlignedBuffer holds plain values");

public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(size_t n) { reserve(n); }
    ~AlignedBuffer() { std::free(data_); }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
    AlignedBuffer(AlignedBuffer &&other) noexcept : data_(other.data_), capacity_(other.capacity_) {
        other.data_ = nullptr;
        other.capacity_ = 0;
    }
    AlignedBuffer &operator=(AlignedBuffer &&other) noexcept {
        if (this != &other) {
            std::free(data_);
            data_ = other.data_;
            capacity_ = other.capacity_;
            other.data_ = nullptr;
            other.capacity_ = 0;
        }
        return *this;
    }

    // Makes room for n values; throws std::bad_alloc when memory is short.
    void reserve(size_t n) {
        if (n <= capacity_) return;
        const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        void *p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        std::free(data_);
        data_ = static_cast<T *>(p);
        capacity_ = n;
    }

    T *data() { return data_; }
    const T *data() const { return data_; }
    size_t capacity() const { return capacity_; }

private:
    T *data_ = nullptr;
    size_t capacity_ = 0;
};

}  // namespace pi::cpu
