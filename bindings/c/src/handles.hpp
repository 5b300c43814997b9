// What the C API's opaque handles are: uvrt_runtime_t and uvrt_job_t over the C++ runtime's core.
//
// A uvrt_runtime_t is a second front end to the same detail::core that uvrt::runtime wraps, so
// the C API shares the C++ runtime's settlement, cancellation and teardown code instead of
// repeating it. A uvrt_job_t wraps one C++ job (detail::job_core) and is that job's continuation:
// the core resumes it on the loop thread when the job settles, and it calls the done callback.
//
// Invariants:
//   - `job` (the C++ job) is held, with the reference a future would hold, until the job
//     settles; then `job` and `runtime` are null, which is what "settled" means here. Only the
//     loop thread touches either.
//   - A uvrt_job_t has one or two holders: uvrt until the done callback has returned, and the
//     application until uvrt_job_release if it asked for the handle. The last one frees it.
//   - The message is written only by the work function while it runs (checked through `worker`)
//     and read only on the loop thread after settlement, which libuv's completion queue orders.
//   - Every unsettled job is on its runtime's `pending` list, so that destroy can ask the running
//     ones to stop: C jobs carry their own stop flag instead of a std::stop_source, which would
//     cost an allocation a job.
#pragma once

#include <uvrt.h>

#include <atomic>
#include <string>
#include <thread>

#include "core.hpp"

struct uvrt_job_s;

struct uvrt_runtime_s {
  uvrt::detail::core* core;
  uvrt_job_s* pending = nullptr;  // unsettled jobs, linked through uvrt_job_s::prev/next
};

struct uvrt_job_s : uvrt::detail::continuation {
  uvrt_runtime_s* runtime;
  uvrt::detail::job_core* job = nullptr;
  uvrt_job_s* prev = nullptr;
  uvrt_job_s* next = nullptr;
  std::thread::id owner;  // the runtime's loop thread; stays valid after the runtime is gone
  uvrt_work_cb work;
  uvrt_done_cb done;
  void* arg;
  int holders;
  bool stopping = false;  // stop_all's note between its two passes
  std::atomic<bool> stop_requested{false};
  std::atomic<std::thread::id> worker{};  // the thread running `work`, while it runs
  std::string message;

  bool settled() const noexcept { return job == nullptr; }
  const char* message_text = nullptr;  // what uvrt_job_message returns once settled
};

namespace uvrt::c_api {

// The error code for the exception being handled: call inside a catch block only.
int error_of_current_exception() noexcept;

// Records `text` as the job's message, or a fixed note if it cannot be copied.
void set_message(uvrt_job_s* job, const char* text) noexcept;

// For destroy: cancels every queued job of `runtime`, then flags every running one to stop, in
// that order (as the C++ teardown does), so that a job told to stop cannot free a worker for a
// queued job that is about to be cancelled.
void stop_all(uvrt_runtime_s* runtime) noexcept;

}  // namespace uvrt::c_api
