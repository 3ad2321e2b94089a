// The KV cache: keys and values of every layer, sequence slot and position,
// laid out [layer][slot][pos][kv_dim], stored as F16 (default) or F32.
// Allocated once at session creation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/aligned_buffer.h"

namespace ts {

enum class KvType { F16 = 0, F32 = 1 };

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_slots, int64_t n_ctx, int64_t kv_dim, KvType type)
      : n_slots_(n_slots), n_ctx_(n_ctx), kv_dim_(kv_dim), type_(type) {
    const size_t elem = type == KvType::F16 ? 2 : 4;
    const size_t bytes = static_cast<size_t>(n_layer * n_slots * n_ctx * kv_dim) * elem;
    k_.Reset(bytes);
    v_.Reset(bytes);
  }

  KvType type() const { return type_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t bytes() const { return k_.bytes() + v_.bytes(); }

  // Index of the first element of (layer, slot, pos).
  size_t Offset(int64_t layer, int64_t slot, int64_t pos) const {
    return static_cast<size_t>(((layer * n_slots_ + slot) * n_ctx_ + pos) * kv_dim_);
  }
  uint16_t* k16(size_t off) const { return k_.as<uint16_t>() + off; }
  uint16_t* v16(size_t off) const { return v_.as<uint16_t>() + off; }
  float* k32(size_t off) const { return k_.as<float>() + off; }
  float* v32(size_t off) const { return v_.as<float>() + off; }

 private:
  int64_t n_slots_, n_ctx_, kv_dim_;
  KvType type_;
  AlignedBuffer k_, v_;
};

}  // namespace ts
