// The one place the CPU is asked what it can do: instruction-set features
// (cpuid/xgetbv on x86-64, hwcaps on aarch64), the kernel path to use, and
// the number of physical cores this process may run on.
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "bindings/errors.h"
#include "kernels/kernels.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace ts {

namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;      // XMM and YMM state saved by the OS
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;    // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_ymm) return f;
  f.fma = fma;
  f.f16c = f16c;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    if (os_zmm) {
      f.avx512f = b & (1u << 16);
      f.avx512dq = b & (1u << 17);
      f.avx512bw = b & (1u << 30);
      f.avx512vl = b & (1u << 31);
      f.avx512vnni = c & (1u << 11);
    }
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = a & (1u << 4);
  }
#elif defined(__aarch64__)
  f.neon = true;  // mandatory in AArch64
#if defined(HWCAP_ASIMDDP)
  f.neon_dotprod = getauxval(AT_HWCAP) & HWCAP_ASIMDDP;
#else
  f.neon_dotprod = getauxval(AT_HWCAP) & (1ul << 20);
#endif
#endif
  return f;
}

bool path_supported(CpuPath p, const CpuFeatures& f) {
  switch (p) {
    case CpuPath::Scalar: return true;
    case CpuPath::Avx2: return f.avx2 && f.fma && f.f16c;
    case CpuPath::Avx512:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c;
    case CpuPath::Neon: return f.neon;
  }
  return false;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const char* cpu_path_name(CpuPath p) {
  switch (p) {
    case CpuPath::Scalar: return "scalar";
    case CpuPath::Avx2: return "avx2";
    case CpuPath::Avx512: return "avx512";
    case CpuPath::Neon: return "neon";
  }
  return "unknown";
}

bool cpu_path_supported(CpuPath p) { return path_supported(p, cpu_features()); }

CpuPath select_cpu_path(const std::string& override_name) {
  const CpuFeatures& f = cpu_features();
  if (override_name.empty()) {
    for (CpuPath p : {CpuPath::Avx512, CpuPath::Avx2, CpuPath::Neon})
      if (path_supported(p, f)) return p;
    return CpuPath::Scalar;
  }
  for (CpuPath p : {CpuPath::Scalar, CpuPath::Avx2, CpuPath::Avx512, CpuPath::Neon}) {
    if (override_name != cpu_path_name(p)) continue;
    if (!path_supported(p, f))
      throw EngineError("INVALID_ARGUMENT", std::string("CPU path '") + override_name + "' is not supported by this CPU");
    return p;
  }
  throw EngineError("INVALID_ARGUMENT",
                    "unknown CPU path '" + override_name + "' (expected scalar, avx2, avx512 or neon)");
}

int physical_core_count() {
  static const int count = [] {
    const int fallback = std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return fallback;
    std::set<std::pair<int, int>> cores;  // (package, core id)
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      int package = -1, core = -1;
      for (auto [file, out] : {std::pair<const char*, int*>{"physical_package_id", &package}, {"core_id", &core}}) {
        if (FILE* fp = std::fopen((base + file).c_str(), "r")) {
          if (std::fscanf(fp, "%d", out) != 1) *out = -1;
          std::fclose(fp);
        }
      }
      if (package < 0 || core < 0) return std::min(fallback, CPU_COUNT(&set));  // no topology info
      cores.insert({package, core});
    }
    return cores.empty() ? fallback : static_cast<int>(cores.size());
  }();
  return count;
}

}  // namespace ts
