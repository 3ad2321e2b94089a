// GGUF reader: memory-maps a file read-only (or, on request, reads it whole
// into one aligned heap block) and exposes metadata and tensor views in place
// (no further copy of weight data). Every count, length, dimension,
// type and offset is checked against the file size before use; a bad file
// throws EngineError("GGUF_INVALID", "...what and where...").
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ts {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// One metadata value. Scalars are widened; strings and arrays point into the
// mapping (arrays of strings are decoded into `strings`).
struct GgufValue {
  GgufType type = GgufType::UINT8;
  // scalar payloads (valid for the matching scalar types)
  uint64_t u64 = 0;   // unsigned ints and bool
  int64_t i64 = 0;    // signed ints (also set for unsigned when it fits)
  double f64 = 0;     // floats (also set for every numeric type)
  std::string str;    // STRING
  // ARRAY
  GgufType elem_type = GgufType::UINT8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;        // raw little-endian elements (numeric arrays), in the mapping
  std::vector<std::string> strings;      // decoded elements of string arrays
  std::vector<GgufValue> items;          // elements of arrays of arrays (nested arrays)
};

// "uint8", "string", "array", ... (GGUF's own names); "unknown" for other ids.
const char* GgufTypeName(GgufType type);

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint32_t type = 0;             // ggml type id
  uint64_t offset = 0;           // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr; // in the mapping
  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// How the file's bytes get into memory. Map: a read-only private mapping, paged
// in on first use and shared by every process that maps the file. Read: read()
// into a 4096-byte aligned heap block at open (resident, private to the
// process: the ablation counterpart of the mapping). The parser sees the same
// bytes and applies the same bounds checks either way.
enum class GgufLoadMode { Map, Read };

class GgufFile {
 public:
  // Throws EngineError: IO_ERROR (cannot open/map/read), GGUF_INVALID (malformed).
  // Tensor types that ggml defines but the engine cannot compute are accepted
  // here; the model loader refuses them with MODEL_UNSUPPORTED.
  static std::unique_ptr<GgufFile> Open(const std::string& path, GgufLoadMode mode = GgufLoadMode::Map);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::string& path() const { return path_; }
  GgufLoadMode load_mode() const { return mode_; }

  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const GgufValue* Find(const std::string& key) const;  // nullptr if absent
  bool Has(const std::string& key) const { return Find(key) != nullptr; }
  // Typed getters: throw GGUF_INVALID naming the key when present with a wrong
  // type; return `def` when absent. The Require* forms throw when absent.
  uint64_t GetU64(const std::string& key, uint64_t def) const;
  double GetF64(const std::string& key, double def) const;
  std::string GetString(const std::string& key, const std::string& def) const;
  uint64_t RequireU64(const std::string& key) const;
  std::string RequireString(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* Tensor(const std::string& name) const;  // nullptr if absent

  // Hint the kernel to read ahead (prefetch) or lock the mapping in memory.
  void Prefetch() const;
  // mlock()s the whole mapping; false (errno kept) when the kernel refuses,
  // e.g. RLIMIT_MEMLOCK too low. The caller decides whether that is fatal.
  bool Lock() const;

 private:
  GgufFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  GgufLoadMode mode_ = GgufLoadMode::Map;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> kv_index_;      // key -> index in kvs_
  std::unordered_map<std::string, size_t> tensor_index_;  // name -> index in tensors_
  friend class GgufParser;
};

}  // namespace ts
