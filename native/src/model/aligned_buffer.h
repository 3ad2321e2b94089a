// A fixed-size, 64-byte aligned, uninitialised heap block. Sessions allocate
// all of them at creation so that a decode step allocates nothing. Allocated
// with the aligned global operator new, so the addon's allocation counter
// (allocation_counter.cpp) sees them.
#pragma once
#include <cstddef>
#include <new>
#include <utility>

namespace ts {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { Reset(bytes); }
  ~AlignedBuffer() { Free(); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }

  void Reset(size_t bytes) {
    Free();
    if (bytes == 0) return;
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = ::operator new(rounded, std::align_val_t{64});
    bytes_ = rounded;
  }

  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void Free() {
    if (data_) ::operator delete(data_, std::align_val_t{64});
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ts
