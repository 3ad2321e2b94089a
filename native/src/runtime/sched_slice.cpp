#include "runtime/sched_slice.h"

#include <cerrno>
#include <cstring>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace ts {

#if defined(__linux__) && defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
namespace {
// struct sched_attr of <linux/sched/types.h> (SCHED_ATTR_SIZE_VER1), which glibc does not declare.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};
constexpr uint32_t kSchedOther = 0;
}  // namespace

bool set_thread_slice(uint64_t nanos, uint64_t* previous, std::string* error) {
  SchedAttr a;
  std::memset(&a, 0, sizeof a);
  if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0) {
    *error = std::string("sched_getattr: ") + std::strerror(errno);
    return false;
  }
  if (previous) *previous = a.sched_runtime;
  if (a.sched_policy != kSchedOther) {
    *error = "the thread is not in the normal scheduling class";
    return false;
  }
  // Kernels before 6.12 report 0 and ignore the field for normal threads.
  if (a.sched_runtime == 0) {
    *error = "this kernel has no per-thread slice (Linux 6.12+)";
    return false;
  }
  if (nanos == 0) return true;
  a.size = sizeof a;
  a.sched_runtime = nanos;
  if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
    *error = std::string("sched_setattr: ") + std::strerror(errno);
    return false;
  }
  return true;
}
#else
bool set_thread_slice(uint64_t, uint64_t* previous, std::string* error) {
  if (previous) *previous = 0;
  *error = "no per-thread scheduler slice on this platform";
  return false;
}
#endif

}  // namespace ts
