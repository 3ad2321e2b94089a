// The scheduler time slice of the calling thread (Linux 6.12+, EEVDF: a fair
// task's sched_runtime is its slice). A thread with a short slice gets an
// early virtual deadline when it wakes, so it preempts a running CPU-bound
// thread at once instead of waiting for that thread's slice (1.4 ms by
// default here) to run out. The server's event-loop thread uses this so that
// tokens the engine threads hand over leave without waiting for a core.
#pragma once
#include <cstdint>
#include <string>

namespace ts {

// Sets the slice to `nanos` (the kernel clamps it to 0.1..100 ms). Returns
// false with the reason in *error where the kernel or platform has no such
// setting (then nothing changed). nanos == 0 reads without changing.
bool set_thread_slice(uint64_t nanos, uint64_t* previous, std::string* error);

}  // namespace ts
