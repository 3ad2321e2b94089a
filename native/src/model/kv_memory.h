// The KV cache's memory: one mapping of its own, zero-filled, whose pages
// become resident only as positions are written (a short request touches a page
// or two per layer and slot of a cache sized for the whole context). Being one
// mapping lets the session say how much of it is resident (mincore), and on
// Linux it is a memfd named "tokenstream-kv", so /proc/<pid>/smaps and pmap
// show the KV caches apart from everything else ("/memfd:tokenstream-kv
// (deleted)"): bench:memory subtracts exactly their resident pages.
#pragma once
#include <cstddef>

namespace ts {

class KvMemory {
 public:
  KvMemory() = default;
  // Throws EngineError("OUT_OF_MEMORY") if the mapping cannot be made.
  explicit KvMemory(size_t bytes);
  ~KvMemory();
  KvMemory(const KvMemory&) = delete;
  KvMemory& operator=(const KvMemory&) = delete;

  void* data() const { return base_; }
  // Bytes asked for (the mapping is rounded up to whole pages).
  size_t bytes() const { return bytes_; }
  // Bytes of the mapping in memory now (whole pages, at most bytes()).
  size_t ResidentBytes() const;

 private:
  void* base_ = nullptr;
  size_t bytes_ = 0;
  size_t mapped_ = 0;
};

// The name of the KV mappings in /proc/<pid>/smaps on Linux.
constexpr const char* kKvMappingName = "tokenstream-kv";

}  // namespace ts
