// Counts calls to the global operator new made by the addon's code, so tests
// can show that a decode step allocates nothing on the heap.
#pragma once
#include <cstdint>

namespace ts {
uint64_t heap_allocation_count();
}  // namespace ts
