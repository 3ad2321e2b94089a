// GgufFile: owns the read-only mapping (or the heap copy) of one GGUF file;
// tensors and metadata arrays point into it, so it must outlive every model
// that uses them.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "bindings/errors.h"

namespace ts {

void ParseGguf(GgufFile& file);  // gguf_parser.cpp

namespace {
[[noreturn]] void IoError(const std::string& path, const std::string& what, int err) {
  throw EngineError("IO_ERROR", path + ": " + what + ": " + std::strerror(err));
}

// The whole file into a page-aligned heap block (aligned like a mapping, so
// tensor data keeps the alignment the file gives it). Returns nullptr with
// errno set on failure.
uint8_t* ReadWhole(int fd, uint64_t size) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, static_cast<size_t>(size)) != 0) {
    errno = ENOMEM;
    return nullptr;
  }
  uint8_t* buf = static_cast<uint8_t*>(p);
  uint64_t done = 0;
  while (done < size) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - done, 1u << 30));
    const ssize_t n = ::pread(fd, buf + done, chunk, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n == 0 ? EIO : errno;  // 0: the file shrank under us
      std::free(buf);
      errno = err;
      return nullptr;
    }
    done += static_cast<uint64_t>(n);
  }
  return buf;
}
}  // namespace

std::unique_ptr<GgufFile> GgufFile::Open(const std::string& path, GgufLoadMode mode) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) IoError(path, "cannot open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    IoError(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw EngineError("IO_ERROR", path + ": not a regular file");
  }
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  file->mode_ = mode;
  if (file->size_ > 0 && mode == GgufLoadMode::Read) {
    uint8_t* buf = ReadWhole(fd, file->size_);
    if (!buf) {
      const int err = errno;
      ::close(fd);
      IoError(path, "cannot read", err);
    }
    file->base_ = buf;
  } else if (file->size_ > 0) {  // mmap refuses length 0; the parser reports the empty file
    void* p = ::mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      IoError(path, "cannot map", err);
    }
    file->base_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  ParseGguf(*file);  // throws GGUF_INVALID; the unique_ptr unmaps / frees
  return file;
}

GgufFile::~GgufFile() {
  if (!base_) return;
  if (mode_ == GgufLoadMode::Read)
    std::free(const_cast<uint8_t*>(base_));
  else
    ::munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_));
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::Tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
bool IsUnsigned(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 || t == GgufType::UINT64;
}
bool IsSigned(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 || t == GgufType::INT64;
}
bool IsFloat(GgufType t) { return t == GgufType::FLOAT32 || t == GgufType::FLOAT64; }

[[noreturn]] void WrongType(const std::string& path, const std::string& key, GgufType got, const char* want) {
  throw EngineError("GGUF_INVALID",
                    path + ": metadata key '" + key + "' has type " + GgufTypeName(got) + ", expected " + want);
}
}  // namespace

uint64_t GgufFile::GetU64(const std::string& key, uint64_t def) const {
  const GgufValue* v = Find(key);
  if (!v) return def;
  if (IsUnsigned(v->type)) return v->u64;
  if (IsSigned(v->type)) {
    if (v->i64 < 0)
      throw EngineError("GGUF_INVALID", path_ + ": metadata key '" + key + "' is negative (" +
                                            std::to_string(v->i64) + "), expected an unsigned integer");
    return v->u64;
  }
  WrongType(path_, key, v->type, "an integer");
}

double GgufFile::GetF64(const std::string& key, double def) const {
  const GgufValue* v = Find(key);
  if (!v) return def;
  if (IsUnsigned(v->type) || IsSigned(v->type) || IsFloat(v->type)) return v->f64;
  WrongType(path_, key, v->type, "a number");
}

std::string GgufFile::GetString(const std::string& key, const std::string& def) const {
  const GgufValue* v = Find(key);
  if (!v) return def;
  if (v->type != GgufType::STRING) WrongType(path_, key, v->type, "a string");
  return v->str;
}

uint64_t GgufFile::RequireU64(const std::string& key) const {
  if (!Has(key)) throw EngineError("GGUF_INVALID", path_ + ": required metadata key '" + key + "' is missing");
  return GetU64(key, 0);
}

std::string GgufFile::RequireString(const std::string& key) const {
  if (!Has(key)) throw EngineError("GGUF_INVALID", path_ + ": required metadata key '" + key + "' is missing");
  return GetString(key, "");
}

void GgufFile::Prefetch() const {
  // A heap copy is resident already.
  if (base_ && mode_ == GgufLoadMode::Map) ::madvise(const_cast<uint8_t*>(base_), static_cast<size_t>(size_), MADV_WILLNEED);
}

bool GgufFile::Lock() const {
  if (!base_) return true;
  return ::mlock(base_, static_cast<size_t>(size_)) == 0;
}

}  // namespace ts
