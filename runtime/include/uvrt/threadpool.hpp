/// @file
/// libuv's thread pool, as uvrt starts and validates it.
///
/// libuv keeps one pool per process, shared by every loop, and starts it on the first pool use
/// by anyone (uv_queue_work, async uv_fs_*, uv_getaddrinfo...). It reads UV_THREADPOOL_SIZE
/// once, at that moment, and silently maps bad values ("abc" gives 1 thread, "-1" gives 1024).
/// uvrt instead starts the pool itself when the first runtime is constructed, under a process-wide
/// lock, after validating the requested size:
///   - UV_THREADPOOL_SIZE, if set, must be a plain decimal integer 1..1024 (no sign, no spaces, no
///     suffix), whatever the option says: a bad value is reported, never overwritten.
///   - options::threadpool_size, if not 0, must be 1..1024; it wins over the variable and is
///     exported as UV_THREADPOOL_SIZE.
///   - otherwise the variable's value, or libuv's default of 4 threads.
/// Any violation throws uvrt::threadpool_size_error naming the source and the value.
/// Once the pool runs, asking for another size throws as well: the pool cannot be resized.
///
/// If something else started the pool before uvrt (detected by counting the pool workers that
/// uvrt's own start creates: none appear when the pool already runs, whatever other threads the
/// application creates meanwhile), uvrt reports the size libuv derives from UV_THREADPOOL_SIZE as
/// it is now; it cannot see what the variable held when the pool started. The start never waits
/// for a free worker, so it may be called from inside a pool job. After fork() the child starts
/// or finds its own pool anew, as libuv does. Construct the first runtime early, before other
/// threads read the environment: setenv is not safe against concurrent getenv.
#pragma once

#include "export.h"

namespace uvrt {

/// The number of threads in libuv's process-wide pool. Starts the pool first if nobody has, as
/// constructing a runtime with default options would, and can therefore throw
/// threadpool_size_error for an invalid UV_THREADPOOL_SIZE. Thread-safe.
UVRT_EXTERN int threadpool_size();

}  // namespace uvrt
