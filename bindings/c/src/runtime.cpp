// uvrt_runtime_*: creating, running, inspecting and destroying a runtime from C. Each call checks
// its arguments and its thread first, so that the C++ core below only ever sees valid use.
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "drive.hpp"
#include "handles.hpp"
#include "threadpool_start.hpp"

namespace {

// uvrt_options_t.reserved_threads as uvrt::options::reserved_threads. In C, 0 is "no preference"
// (as for threadpool_size), so that a zero-initialised struct, which is how C code writes "the
// defaults", never conflicts with the number another part of the process reserved; "none" is
// UVRT_RESERVED_NONE. Any other negative number becomes -2, which start_threadpool refuses.
int reserved_threads(int c_value) noexcept {
  if (c_value == 0) return -1;
  if (c_value == UVRT_RESERVED_NONE) return 0;
  return c_value < 0 ? -2 : c_value;
}

int create(uvrt_runtime_t** runtime, uv_loop_t* loop, const uvrt_options_t* options) noexcept {
  if (!runtime) return UVRT_EINVAL;
  try {
    auto rt = std::make_unique<uvrt_runtime_s>();
    uvrt::options opts;
    if (options) {
      opts.threadpool_size = options->threadpool_size;
      opts.reserved_threads = reserved_threads(options->reserved_threads);
      opts.max_queued = options->max_queued;
    }
    rt->core = uvrt::detail::open_core(loop, opts);
    *runtime = rt.release();
    return 0;
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
}

bool on_loop_thread(const uvrt_runtime_t* runtime) noexcept {
  return std::this_thread::get_id() == runtime->core->owner;
}

}  // namespace

extern "C" {

int uvrt_threadpool_size(void) {
  try {
    return uvrt::detail::start_threadpool(0, std::nullopt);
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
}

int uvrt_runtime_create(uvrt_runtime_t** runtime, const uvrt_options_t* options) {
  return create(runtime, nullptr, options);
}

int uvrt_runtime_create_on_loop(uvrt_runtime_t** runtime, uv_loop_t* loop, const uvrt_options_t* options) {
  if (!loop) return UVRT_EINVAL;
  return create(runtime, loop, options);
}

int uvrt_runtime_destroy(uvrt_runtime_t* runtime) {
  if (!runtime) return UVRT_EINVAL;
  uvrt::detail::core* core = runtime->core;
  if (core->inherited()) {
    // A forked child's copy: the loop and the jobs are the parent's (see lifecycle.hpp); only
    // the handle goes.
    uvrt::detail::core::close(core);
    delete runtime;
    return 0;
  }
  if (!on_loop_thread(runtime)) return UVRT_ETHREAD;
  // Inside a done callback of any runtime on this loop, or inside uvrt_runtime_run, the teardown
  // would re-enter the loop it is called from; the C++ destructor then only begins the teardown,
  // the C API refuses instead, so that destroy keeps its promise that every done callback has
  // run when it returns 0.
  if (uvrt::detail::inside_loop(core->loop)) return UVRT_EBUSY;
  uvrt::detail::core::close(core);  // cancels, waits for the running jobs, runs every done callback
  delete runtime;
  return 0;
}

uv_loop_t* uvrt_runtime_loop(const uvrt_runtime_t* runtime) { return runtime ? runtime->core->loop : nullptr; }

int uvrt_runtime_stats(uvrt_runtime_t* runtime, uvrt_runtime_stats_t* stats) {
  if (!runtime || !stats || stats->size < sizeof(uvrt_runtime_stats_t) || stats->size > uvrt::c_api::sized_struct_limit)
    return UVRT_EINVAL;
  if (runtime->core->inherited()) return UVRT_EFORKED;
  if (!on_loop_thread(runtime)) return UVRT_ETHREAD;
  uvrt::runtime_stats s;
  try {
    s = runtime->core->stats();
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
  const auto latency = [](const uvrt::latency& l) {
    return uvrt_latency_t{l.count, static_cast<std::uint64_t>(l.p50.count()), static_cast<std::uint64_t>(l.p90.count()),
                          static_cast<std::uint64_t>(l.p99.count()), static_cast<std::uint64_t>(l.max.count())};
  };
  // A newer uvrt.h's larger struct: what this version does not know is zeroed, and `size` says
  // how much of it this version filled.
  const std::size_t given = stats->size;
  if (given > sizeof(uvrt_runtime_stats_t))
    std::memset(reinterpret_cast<char*>(stats) + sizeof(uvrt_runtime_stats_t), 0, given - sizeof(uvrt_runtime_stats_t));
  *stats = uvrt_runtime_stats_t{sizeof(uvrt_runtime_stats_t), s.submitted, s.settled, s.cancelled, s.abandoned, s.queued,
                                s.running, s.waiting_for_limiter, latency(s.wait), latency(s.run)};
  return 0;
}

int uvrt_runtime_run(uvrt_runtime_t* runtime) {
  if (!runtime) return UVRT_EINVAL;
  if (runtime->core->inherited()) return UVRT_EFORKED;
  if (!on_loop_thread(runtime)) return UVRT_ETHREAD;
  if (uvrt::detail::inside_loop(runtime->core->loop)) return UVRT_EBUSY;
  try {
    uvrt::detail::drive(runtime->core, "uvrt_runtime_run", {}, nullptr, nullptr);
    return 0;
  } catch (...) {
    // A done callback forked and this is the child: the loop was stopped, and is the parent's.
    if (runtime->core->inherited()) return UVRT_EFORKED;
    // drive rethrows what a done callback threw (uvrt caught it so the loop could go on).
    return UVRT_EEXCEPTION;
  }
}

}  // extern "C"
