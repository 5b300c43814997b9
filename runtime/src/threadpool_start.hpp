// Starting libuv's process-wide pool with a validated size. See uvrt/threadpool.hpp.
#pragma once

#include <uv.h>

#include "uvrt/errors.hpp"

namespace uvrt::detail {

// The pool already runs with another size. Internal, so that the C API can tell this case from
// an invalid size without parsing messages; C++ callers see a threadpool_size_error.
class threadpool_conflict_error : public threadpool_size_error {
 public:
  using threadpool_size_error::threadpool_size_error;
};

// Validates `requested` (0: no preference) and UV_THREADPOOL_SIZE, starts the pool if uvrt has
// not yet, and returns its size. Throws threadpool_size_error (threadpool_conflict_error for a conflict with
// the running pool). Thread-safe.
int start_threadpool(int requested);

class core;

// What constructing a runtime does, for uvrt::runtime and the C API alike: starts the pool with
// `threadpool_size` (see start_threadpool), then opens a core on `app_loop` (null: a loop of its
// own). Throws threadpool_size_error, std::bad_alloc or std::runtime_error.
core* open_core(uv_loop_t* app_loop, int threadpool_size);

}  // namespace uvrt::detail
