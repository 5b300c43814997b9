/// @file
/// Construction options of a uvrt::runtime.
#pragma once

#include <chrono>
#include <cstddef>

namespace uvrt {

class limiter;

/// Construction options of a uvrt::runtime: runtime(options), runtime(uv_loop_t*, options).
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
struct options {
  /// Size of libuv's thread pool, which is process-wide and sized once, when it starts.
  /// 0 means no preference: use the pool as it runs, or start it with UV_THREADPOOL_SIZE from
  /// the environment if that is set, else with libuv's default of 4 threads. Any other value
  /// must be 1..1024 and must match the pool if it is already running; see threadpool.hpp.
  int threadpool_size = 0;

  /// Threads of libuv's pool that to_thread jobs never occupy, so that libuv's own pool work (file
  /// system requests, uv_getaddrinfo, uv_random, the application's uv_queue_work) always finds one
  /// free. Process-wide like the pool size: every runtime of the process together keeps at most
  /// pool size - reserved_threads threads busy. The first runtime sets it; -1 (no preference) takes
  /// the process's value, or 0 if no runtime set one yet. Otherwise 0 to pool size - 1, and equal
  /// to the process's value once one is set: threadpool_size_error. See threadpool.hpp for why the
  /// default is 0.
  int reserved_threads = -1;

  /// How many jobs of this runtime may wait to run at once (queued, or waiting for a limiter's
  /// token); past it to_thread throws queue_full_error and queues nothing. 0: no bound.
  std::size_t max_queued = 0;
};

/// Options of one job: runtime::to_thread(job_options{...}, f, args...).
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
struct job_options {
  /// At most limiter->tokens() jobs of the limiter run at once, across every runtime that uses
  /// it; the others wait in submission order inside uvrt, holding no pool thread. Null: none.
  uvrt::limiter* limiter = nullptr;
  /// Non-zero: the job's future is wrapped in uvrt::timeout(future, timeout, grace) (time.hpp):
  /// past `timeout` the job is cancelled (or asked to stop) and the future fails with
  /// timeout_error, at once, or when the job has returned within `grace`. Negative values are
  /// std::invalid_argument; `grace` without `timeout` means nothing.
  std::chrono::nanoseconds timeout{0};
  /// With `timeout`: how long a running job asked to stop at its timeout may take to return
  /// before the future fails anyway (uvrt::timeout's `grace`). 0: none.
  std::chrono::nanoseconds grace{0};
};

}  // namespace uvrt
