#include "runtime/malloc_tuning.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ts {

bool LimitMallocArenas(int max_arenas) {
#if defined(__GLIBC__)
  return max_arenas > 0 && mallopt(M_ARENA_MAX, max_arenas) == 1;
#else
  (void)max_arenas;
  return false;
#endif
}

bool TrimMalloc() {
#if defined(__GLIBC__)
  malloc_trim(0);
  return true;
#else
  return false;
#endif
}

}  // namespace ts
