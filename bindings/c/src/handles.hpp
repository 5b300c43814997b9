// What the C API's opaque handles are: uvrt_runtime_t, uvrt_job_t and uvrt_limiter_t over the C++
// runtime's core.
//
// A uvrt_runtime_t is a second front end to the same detail::core that uvrt::runtime wraps, so
// the C API shares the C++ runtime's queueing, settlement, cancellation and teardown code instead
// of repeating it. A uvrt_job_t is a job of that core like any C++ job, with a job table of its
// own (c_job_table in job.cpp): its block is the job_core followed by the C job's fields, one
// allocation a job, and the handle the application holds is the job_core's address. A job
// submitted with a limiter has job.hpp's limiter prefix in front of it, like a C++ job: the block
// starts 16 bytes before the handle then (detail::block_of). A job submitted with a timeout has a
// c_timeout behind the C job's fields, in the same block (`timed` says so), so that a job without
// one pays nothing for the feature. A uvrt_limiter_t is a uvrt::limiter.
//
// Invariants:
//   - The block has one or two references: the runtime's until the done callback has returned,
//     and the application's until uvrt_job_release if it asked for the handle. The last one
//     frees it. So a handle stays valid after its job settled and after its runtime is gone.
//   - "Settled" means the job's state is no longer pending; it is published just before the
//     done callback runs, so a cancel from inside done answers UVRT_EALREADY.
//   - `status`, `result` and the message are written only by the work function while it runs
//     (checked through `worker`) and read only on the loop thread after libuv's completion queue
//     has ordered them. Everything else but the two atomics is the loop thread's.
//   - The core asks a running C job to stop through the table's request_stop, which sets
//     `stop_requested`: a C job has no std::stop_source, which would cost an allocation a job.
//   - A timed job's timer entry is armed only while the job is pending and its deadline (the
//     timeout, then the end of the grace period) is ahead: finish disarms it before the runtime's
//     reference goes, so the entry never outlives the block. A job whose done callback got
//     UVRT_ETIMEDOUT while it ran was settled early through core::abandon (flag_abandoned): when
//     its work returns, finish drops the outcome without calling done, and until then nothing on
//     the loop thread reads `status`, `result` or the message, which the worker may still write.
#pragma once

#include <uvrt.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <thread>
#include <type_traits>

#include "core.hpp"
#include "uvrt/detail/timer.hpp"
#include "uvrt/limiter.hpp"

struct uvrt_runtime_s {
  uvrt::detail::core* core;
};

struct uvrt_limiter_s {
  uvrt::limiter lim;
};

struct uvrt_job_s {
  uvrt::detail::job_core job;  // first member: the core's job is the handle's address
  std::thread::id owner;       // the runtime's loop thread; stays valid after the runtime is gone
  uvrt_work_cb work;
  uvrt_done_cb done;
  void* arg;
  void* result;
  std::atomic<std::thread::id> worker;  // the thread running `work`, while it runs
  char* message;                        // owned copy, lost_message, or null
  int status;
  std::atomic<bool> stop_requested;
  bool timed;  // a c_timeout follows; set before submission, read-only after (the worker reads it)

  bool settled() const noexcept { return job.state.load(std::memory_order_relaxed) != uvrt::detail::job_state::pending; }
};

static_assert(std::is_standard_layout_v<uvrt_job_s>, "a job_core pointer must convert to its handle");

namespace uvrt::c_api {

// What a job submitted with uvrt_job_options_t.timeout_ms carries behind its uvrt_job_s: the
// entry in its runtime's timer heap, the grace period, and where the timeout stands.
struct c_timeout : detail::timer_entry {
  uvrt_job_s* job;
  std::chrono::nanoseconds grace;  // 0: none
  std::atomic<bool> returned{false};  // the worker: the work function has returned
  bool expired = false;          // loop thread: the timeout came first; done gets UVRT_ETIMEDOUT
  bool in_grace = false;         // loop thread: armed for the end of the grace period
};

inline c_timeout* timeout_of(uvrt_job_s* job) noexcept {
  return std::launder(reinterpret_cast<c_timeout*>(reinterpret_cast<char*>(job) + sizeof(uvrt_job_s)));
}
inline const c_timeout* timeout_of(const uvrt_job_s* job) noexcept {
  return timeout_of(const_cast<uvrt_job_s*>(job));
}
static_assert(sizeof(uvrt_job_s) % alignof(c_timeout) == 0, "a c_timeout follows the job, aligned");

}  // namespace uvrt::c_api

namespace uvrt::c_api {

// A struct with a leading size field (uvrt_job_options_t, uvrt_runtime_stats_t) claiming more
// than this was never initialised: larger than any uvrt.h will make one, so it is refused before
// any byte past the fields uvrt knows is touched.
inline constexpr std::size_t sized_struct_limit = 4096;

// The error code for the exception being handled: call inside a catch block only.
int error_of_current_exception() noexcept;

// Records `text` as the job's message (null clears it), or a fixed note if it cannot be copied.
void set_message(uvrt_job_s* job, const char* text) noexcept;
void free_message(uvrt_job_s* job) noexcept;

}  // namespace uvrt::c_api
