// A fixed-size, 64-byte aligned, uninitialised heap block. Sessions allocate
// all of them at creation so that a decode step allocates nothing.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

namespace ts {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { Reset(bytes); }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }

  void Reset(size_t bytes) {
    std::free(data_);
    data_ = nullptr;
    bytes_ = 0;
    if (bytes == 0) return;
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = nullptr;
    if (posix_memalign(&p, 64, rounded) != 0) throw std::bad_alloc();
    data_ = p;
    bytes_ = rounded;
  }

  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ts
