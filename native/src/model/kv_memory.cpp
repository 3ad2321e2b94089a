#include "model/kv_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "bindings/errors.h"

namespace ts {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// A shared mapping of a fresh memfd (tmpfs pages, allocated on first touch like
// anonymous memory, and named in smaps), or nullptr where memfd is unavailable.
void* MapNamed(size_t length) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
  const int fd = ::memfd_create(kKvMappingName, MFD_CLOEXEC);
  if (fd < 0) return nullptr;
  void* p = MAP_FAILED;
  if (::ftruncate(fd, static_cast<off_t>(length)) == 0)
    p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file
  return p == MAP_FAILED ? nullptr : p;
#else
  (void)length;
  return nullptr;
#endif
}

}  // namespace

KvMemory::KvMemory(size_t bytes) {
  if (bytes == 0) return;
  const size_t page = PageSize();
  const size_t length = (bytes + page - 1) / page * page;
  void* p = MapNamed(length);
  if (!p) {
    p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw EngineError("OUT_OF_MEMORY", "cannot map " + std::to_string(length) + " bytes for the KV cache: " + std::strerror(errno));
  }
  base_ = p;
  bytes_ = bytes;
  mapped_ = length;
}

KvMemory::~KvMemory() {
  if (base_) ::munmap(base_, mapped_);
}

size_t KvMemory::ResidentBytes() const {
  if (!base_) return 0;
  const size_t page = PageSize();
  // In pieces, so a large cache needs no large vector.
  constexpr size_t kPagesPerCall = 4096;
  unsigned char vec[kPagesPerCall];
  size_t resident = 0;
  for (size_t off = 0; off < mapped_; off += kPagesPerCall * page) {
    const size_t len = std::min(mapped_ - off, kPagesPerCall * page);
#if defined(__APPLE__)
    using VecT = char;
#else
    using VecT = unsigned char;
#endif
    if (::mincore(static_cast<char*>(base_) + off, len, reinterpret_cast<VecT*>(vec)) != 0)
      throw EngineError("INTERNAL", std::string("mincore on the KV cache failed: ") + std::strerror(errno));
    const size_t n = (len + page - 1) / page;
    for (size_t i = 0; i < n; ++i) resident += vec[i] & 1;
  }
  // The last page may be partly beyond bytes(): report at most what was asked for.
  return std::min(resident * page, bytes_);
}

}  // namespace ts
