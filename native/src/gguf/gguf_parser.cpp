// GGUF parser: walks the mapped bytes of a GGUF v2/v3 file and fills GgufFile.
// Every read is bounds-checked against the file size first, and every count
// is checked against the bytes that remain before anything is allocated for
// it, so a hostile file costs at most O(file size) time and memory.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>

#include "bindings/errors.h"
#include "gguf/gguf.h"
#include "kernels/ggml_types.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF is read in place: little-endian hosts only");

namespace ts {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint32_t kMaxDims = 4;             // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;            // arrays of arrays: deeper is surely garbage

// Bytes of one element of `t` inside an array, or the least bytes a
// variable-size element can take (string: its length; array: type + count).
// 0 for ids GGUF does not define.
uint64_t MinValueSize(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 0;
}

bool IsFixedSize(GgufType t) { return t != GgufType::STRING && t != GgufType::ARRAY; }

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

const char* GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "unknown";
}

class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : f_(file), base_(file.base_), size_(file.size_) {}

  void Parse() {
    ParseHeader();
    for (uint64_t i = 0; i < n_kv_; ++i) ParseKV();
    context_.clear();
    ParseTensorInfos();
    PlaceTensorData();
  }

 private:
  [[noreturn]] void Fail(const std::string& what, uint64_t at) const {
    std::string msg = f_.path_ + ": " + what + " at byte " + std::to_string(at);
    if (!context_.empty()) msg += " (" + context_ + ")";
    throw EngineError("GGUF_INVALID", msg);
  }

  uint64_t Remaining() const { return size_ - pos_; }

  // Ensures n more bytes exist for `what`; the message says how short the file is.
  void Need(uint64_t n, const char* what) const {
    if (n > Remaining())
      Fail(std::string("truncated file: ") + what + " needs " + std::to_string(n) + " bytes, " +
               std::to_string(Remaining()) + " remain",
           pos_);
  }

  template <typename T>
  T Read(const char* what) {
    Need(sizeof(T), what);
    T v = Load<T>(base_ + pos_);
    pos_ += sizeof(T);
    return v;
  }

  std::string ReadString(const char* what) {
    const uint64_t at = pos_;
    const uint64_t len = Read<uint64_t>(what);
    if (len > Remaining()) {
      pos_ = at;
      Fail(std::string("truncated file or absurd length: ") + what + " of " + std::to_string(len) +
               " bytes, but " + std::to_string(Remaining() - 8) + " remain",
           at);
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

  void ParseHeader() {
    if (size_ < 4) Fail("truncated file: " + std::to_string(size_) + " bytes is too small for a GGUF header", 0);
    const uint32_t magic = Read<uint32_t>("magic");
    if (magic != kGgufMagic) Fail("bad magic (not a GGUF file)", 0);
    const uint32_t version = Read<uint32_t>("version");
    if (version == 1) Fail("unsupported GGUF version 1 (only v2 and v3 are read)", 4);
    if (version != 2 && version != 3) Fail("unsupported GGUF version " + std::to_string(version), 4);
    f_.version_ = version;
    const uint64_t n_tensors_at = pos_;
    n_tensors_ = Read<uint64_t>("tensor count");
    const uint64_t n_kv_at = pos_;
    n_kv_ = Read<uint64_t>("metadata count");
    // The smallest KV is an empty key (8) + type (4) + one byte; the smallest
    // tensor info an empty name (8) + n_dims (4) + type (4) + offset (8).
    if (n_kv_ > Remaining() / 13)
      Fail("absurd metadata count " + std::to_string(n_kv_) + " for the " + std::to_string(Remaining()) +
               " bytes that remain",
           n_kv_at);
    if (n_tensors_ > Remaining() / 24)
      Fail("absurd tensor count " + std::to_string(n_tensors_) + " for the " + std::to_string(Remaining()) +
               " bytes that remain",
           n_tensors_at);
  }

  void ParseKV() {
    const uint64_t at = pos_;
    context_.clear();
    std::string key = ReadString("metadata key");
    context_ = "key '" + key + "'";
    if (f_.kv_index_.count(key)) Fail("duplicate metadata key", at);
    GgufKV kv;
    kv.key = std::move(key);
    const uint64_t type_at = pos_;
    const uint32_t type = Read<uint32_t>("value type");
    if (MinValueSize(type) == 0) Fail("unknown value type id " + std::to_string(type), type_at);
    ParseValue(static_cast<GgufType>(type), kv.value, 0);
    if (kv.key == "general.alignment") SetAlignment(kv.value, at);
    f_.kv_index_.emplace(kv.key, f_.kvs_.size());
    f_.kvs_.push_back(std::move(kv));
  }

  void SetAlignment(const GgufValue& v, uint64_t at) {
    const bool is_int = v.type == GgufType::UINT8 || v.type == GgufType::UINT16 || v.type == GgufType::UINT32 ||
                        v.type == GgufType::UINT64 || v.type == GgufType::INT8 || v.type == GgufType::INT16 ||
                        v.type == GgufType::INT32 || v.type == GgufType::INT64;
    if (!is_int) Fail(std::string("general.alignment has type ") + GgufTypeName(v.type) + ", expected an integer", at);
    if (v.i64 < 0 || v.u64 == 0 || (v.u64 & (v.u64 - 1)) != 0)
      Fail("bad alignment " + (v.i64 < 0 ? std::to_string(v.i64) : std::to_string(v.u64)) +
               ": general.alignment must be a nonzero power of two",
           at);
    f_.alignment_ = v.u64;
  }

  void ParseScalar(GgufType t, GgufValue& v) {
    v.type = t;
    switch (t) {
      case GgufType::UINT8: SetUnsigned(v, Read<uint8_t>("uint8 value")); break;
      case GgufType::UINT16: SetUnsigned(v, Read<uint16_t>("uint16 value")); break;
      case GgufType::UINT32: SetUnsigned(v, Read<uint32_t>("uint32 value")); break;
      case GgufType::UINT64: SetUnsigned(v, Read<uint64_t>("uint64 value")); break;
      case GgufType::BOOL: SetUnsigned(v, Read<uint8_t>("bool value") != 0); break;
      case GgufType::INT8: SetSigned(v, Read<int8_t>("int8 value")); break;
      case GgufType::INT16: SetSigned(v, Read<int16_t>("int16 value")); break;
      case GgufType::INT32: SetSigned(v, Read<int32_t>("int32 value")); break;
      case GgufType::INT64: SetSigned(v, Read<int64_t>("int64 value")); break;
      case GgufType::FLOAT32: v.f64 = Read<float>("float32 value"); break;
      case GgufType::FLOAT64: v.f64 = Read<double>("float64 value"); break;
      case GgufType::STRING: v.str = ReadString("string value"); break;
      case GgufType::ARRAY: break;  // handled by ParseValue
    }
  }

  static void SetUnsigned(GgufValue& v, uint64_t x) {
    v.u64 = x;
    v.i64 = x <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? static_cast<int64_t>(x) : 0;
    v.f64 = static_cast<double>(x);
  }
  static void SetSigned(GgufValue& v, int64_t x) {
    v.i64 = x;
    v.u64 = x >= 0 ? static_cast<uint64_t>(x) : 0;
    v.f64 = static_cast<double>(x);
  }

  void ParseValue(GgufType t, GgufValue& v, int depth) {
    if (t != GgufType::ARRAY) return ParseScalar(t, v);
    v.type = GgufType::ARRAY;
    if (depth >= kMaxArrayDepth) Fail("arrays nested more than " + std::to_string(kMaxArrayDepth) + " deep", pos_);
    const uint64_t elem_at = pos_;
    const uint32_t elem = Read<uint32_t>("array element type");
    const uint64_t min_size = MinValueSize(elem);
    if (min_size == 0) Fail("unknown array element type id " + std::to_string(elem), elem_at);
    v.elem_type = static_cast<GgufType>(elem);
    const uint64_t count_at = pos_;
    v.count = Read<uint64_t>("array length");
    if (v.count > Remaining() / min_size)
      Fail("truncated file or absurd array length: " + std::to_string(v.count) + " elements of " +
               GgufTypeName(v.elem_type) + " need at least " +
               (v.count > std::numeric_limits<uint64_t>::max() / min_size
                    ? std::string("2^64")
                    : std::to_string(v.count * min_size)) +
               " bytes, " + std::to_string(Remaining()) + " remain",
           count_at);
    if (IsFixedSize(v.elem_type)) {
      v.elems = base_ + pos_;
      pos_ += v.count * min_size;  // fits: checked just above
    } else if (v.elem_type == GgufType::STRING) {
      v.strings.reserve(static_cast<size_t>(v.count));  // <= remaining / 8 entries
      for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(ReadString("string array element"));
    } else {
      // Grown as parsed (not reserved): each element's size is only known once read.
      for (uint64_t i = 0; i < v.count; ++i) {
        v.items.emplace_back();
        ParseValue(GgufType::ARRAY, v.items.back(), depth + 1);
      }
    }
  }

  void ParseTensorInfos() {
    f_.tensors_.reserve(static_cast<size_t>(n_tensors_));  // <= remaining / 24, checked in the header
    info_pos_.reserve(static_cast<size_t>(n_tensors_));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      const uint64_t at = pos_;
      context_.clear();
      GgufTensorInfo t;
      t.name = ReadString("tensor name");
      context_ = "tensor '" + t.name + "'";
      if (f_.tensor_index_.count(t.name)) Fail("duplicate tensor name", at);
      const uint64_t dims_at = pos_;
      t.n_dims = Read<uint32_t>("tensor dimension count");
      if (t.n_dims > kMaxDims)
        Fail("too many dimensions: " + std::to_string(t.n_dims) + " (at most " + std::to_string(kMaxDims) + ")",
             dims_at);
      int64_t elements = 1;
      for (uint32_t j = 0; j < t.n_dims; ++j) {
        const uint64_t ne_at = pos_;
        const int64_t ne = Read<int64_t>("tensor dimension");
        if (ne <= 0) Fail("dimension " + std::to_string(j) + " is " + std::to_string(ne) + " (must be > 0)", ne_at);
        if (elements > std::numeric_limits<int64_t>::max() / ne)
          Fail("dimensions overflow: the element count does not fit in int64", ne_at);
        elements *= ne;
        t.ne[j] = ne;
      }
      const uint64_t type_at = pos_;
      t.type = Read<uint32_t>("tensor type");
      const GgmlTypeTraits& traits = ggml_type_traits(t.type);
      if (traits.block_size == 0) Fail("unknown tensor type id " + std::to_string(t.type), type_at);
      if (t.ne[0] % traits.block_size != 0)
        Fail("row length " + std::to_string(t.ne[0]) + " is not a multiple of the block size " +
                 std::to_string(traits.block_size) + " of type " + traits.name,
             type_at);
      const uint64_t offset_at = pos_;
      t.offset = Read<uint64_t>("tensor data offset");
      if (t.offset % f_.alignment_ != 0)
        Fail("misaligned tensor offset " + std::to_string(t.offset) + " (alignment " +
                 std::to_string(f_.alignment_) + ")",
             offset_at);
      const uint64_t row_blocks = static_cast<uint64_t>(t.ne[0] / traits.block_size);
      const uint64_t rows = static_cast<uint64_t>(elements / t.ne[0]);
      if (row_blocks > std::numeric_limits<uint64_t>::max() / traits.type_size ||
          row_blocks * traits.type_size > std::numeric_limits<uint64_t>::max() / rows)
        Fail("tensor byte size overflows 64 bits", dims_at);
      const uint64_t row_bytes = row_blocks * traits.type_size;
      t.nbytes = row_bytes * rows;
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      f_.tensors_.push_back(std::move(t));
      info_pos_.push_back(offset_at);
    }
  }

  // The data section starts at the first aligned byte after the tensor infos.
  void PlaceTensorData() {
    const uint64_t a = f_.alignment_;
    const uint64_t pad = (a - pos_ % a) % a;
    if (pos_ > std::numeric_limits<uint64_t>::max() - pad) Fail("data section offset overflows", pos_);
    f_.data_offset_ = pos_ + pad;
    if (f_.tensors_.empty()) return;  // vocabulary-only files may end right after the metadata
    if (f_.data_offset_ > size_)
      Fail("truncated file: the data section starts at byte " + std::to_string(f_.data_offset_) +
               ", past the end of the file (" + std::to_string(size_) + " bytes)",
           pos_);
    const uint64_t data_size = size_ - f_.data_offset_;
    for (size_t i = 0; i < f_.tensors_.size(); ++i) {
      GgufTensorInfo& t = f_.tensors_[i];
      context_ = "tensor '" + t.name + "'";
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        Fail("tensor data [" + std::to_string(f_.data_offset_) + "+" + std::to_string(t.offset) + ", +" +
                 std::to_string(t.nbytes) + " bytes) extends past the end of the file (" + std::to_string(size_) +
                 " bytes)",
             info_pos_[i]);
      t.data = base_ + f_.data_offset_ + t.offset;
    }
    // No two tensors may share bytes: sort by offset and compare neighbours.
    std::vector<size_t> order(f_.tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return f_.tensors_[x].offset < f_.tensors_[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& prev = f_.tensors_[order[k - 1]];
      const GgufTensorInfo& cur = f_.tensors_[order[k]];
      if (prev.offset + prev.nbytes > cur.offset) {
        context_ = "tensor '" + cur.name + "'";
        Fail("tensor data overlaps tensor '" + prev.name + "' (offsets " + std::to_string(prev.offset) + "+" +
                 std::to_string(prev.nbytes) + " and " + std::to_string(cur.offset) + ")",
             info_pos_[order[k]]);
      }
    }
    context_.clear();
  }

  GgufFile& f_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  std::vector<uint64_t> info_pos_;  // byte offset of each tensor's offset field, for messages
  std::string context_;             // "key '...'" / "tensor '...'" for messages
};

void ParseGguf(GgufFile& file) { GgufParser(file).Parse(); }

}  // namespace ts
