// Starting libuv's process-wide pool with a validated size. See uvrt/threadpool.hpp.
#pragma once

#include <uv.h>

#include <optional>

#include "uvrt/errors.hpp"
#include "uvrt/options.hpp"

namespace uvrt::detail {

// The pool already runs with another size. Internal, so that the C API can tell this case from
// an invalid size without parsing messages; C++ callers see a threadpool_size_error.
class threadpool_conflict_error : public threadpool_size_error {
 public:
  using threadpool_size_error::threadpool_size_error;
};

// Validates `requested` (0: no preference), UV_THREADPOOL_SIZE and `reserved` (reserved threads,
// -1: no preference), starts the pool if uvrt has not yet, sets the pool's slots (pool_slots.hpp)
// the first time, and returns its size. Throws threadpool_size_error (threadpool_conflict_error
// for a conflict with the running pool or the process's reservation). Thread-safe.
// No `reserved`: a query of the pool's size, which sets no reservation (the first runtime still may).
int start_threadpool(int requested, std::optional<int> reserved);

class core;

// What constructing a runtime does, for uvrt::runtime and the C API alike: starts the pool as
// `opts` asks (see start_threadpool), then opens a core on `app_loop` (null: a loop of its own).
// Throws threadpool_size_error, std::bad_alloc or std::runtime_error.
core* open_core(uv_loop_t* app_loop, const options& opts);

}  // namespace uvrt::detail
