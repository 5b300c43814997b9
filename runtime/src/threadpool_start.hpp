// Starting libuv's process-wide pool with a validated size. See uvrt/threadpool.hpp.
#pragma once

namespace uvrt::detail {

// Validates `requested` (0: no preference) and UV_THREADPOOL_SIZE, starts the pool if uvrt has
// not yet, and returns its size. Throws threadpool_size_error. Thread-safe.
int start_threadpool(int requested);

}  // namespace uvrt::detail
