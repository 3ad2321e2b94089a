// The C library's allocator, tuned for a server process: glibc gives every
// thread that allocates its own arena (up to 8 per core), each holding on to
// the memory its thread freed; a server's many threads (V8's platform threads,
// one per engine worker, libuv's pool) that allocate little in steady state
// then cost a few MB each. Elsewhere (musl, macOS) these are no-ops.
#pragma once

namespace ts {

// Caps the arenas of threads that allocate for the first time from now on (the
// threads already running keep theirs). Returns false where unsupported.
bool LimitMallocArenas(int max_arenas);

// Returns freed memory at the end of each arena's heap, and whole free pages
// inside them, to the system (malloc_trim). Returns false where unsupported.
bool TrimMalloc();

}  // namespace ts
