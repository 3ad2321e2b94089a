// The KV cache: keys and values of every layer, sequence slot and position,
// laid out [layer][slot][pos][kv_dim], stored as F16 (default) or F32.
// Allocated once at session creation, K and V in one mapping of their own
// (kv_memory.h) whose pages become resident as positions are written.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/kv_memory.h"

namespace ts {

enum class KvType { F16 = 0, F32 = 1 };

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_slots, int64_t n_ctx, int64_t kv_dim, KvType type)
      : n_slots_(n_slots), n_ctx_(n_ctx), kv_dim_(kv_dim), type_(type) {
    const size_t elem = type == KvType::F16 ? 2 : 4;
    half_ = (static_cast<size_t>(n_layer * n_slots * n_ctx * kv_dim) * elem + 63) / 64 * 64;
    memory_ = std::make_unique<KvMemory>(2 * half_);
    k_ = static_cast<char*>(memory_->data());
    v_ = k_ + half_;
  }

  KvType type() const { return type_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t bytes() const { return 2 * half_; }
  // Bytes of the cache in memory now (pages written so far).
  size_t resident_bytes() const { return memory_->ResidentBytes(); }

  // Index of the first element of (layer, slot, pos).
  size_t Offset(int64_t layer, int64_t slot, int64_t pos) const {
    return static_cast<size_t>(((layer * n_slots_ + slot) * n_ctx_ + pos) * kv_dim_);
  }
  uint16_t* k16(size_t off) const { return reinterpret_cast<uint16_t*>(k_) + off; }
  uint16_t* v16(size_t off) const { return reinterpret_cast<uint16_t*>(v_) + off; }
  float* k32(size_t off) const { return reinterpret_cast<float*>(k_) + off; }
  float* v32(size_t off) const { return reinterpret_cast<float*>(v_) + off; }

 private:
  int64_t n_slots_, n_ctx_, kv_dim_;
  KvType type_;
  size_t half_ = 0;  // bytes of K (and of V), a multiple of 64
  std::unique_ptr<KvMemory> memory_;
  char* k_ = nullptr;
  char* v_ = nullptr;
};

}  // namespace ts
