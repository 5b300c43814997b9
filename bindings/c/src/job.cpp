// uvrt_job_*: submitting work from C, cancelling it, and delivering its outcome to the done
// callback. See handles.hpp for the invariants.
#include <exception>
#include <new>
#include <thread>
#include <utility>

#include "handles.hpp"

namespace {

using uvrt::detail::job_core;

// What a C job produces on the worker; the message travels in the handle.
struct outcome {
  int status;
  void* result;
};

bool on_owner_thread(const uvrt_job_t* job) noexcept { return std::this_thread::get_id() == job->owner; }

void delete_handle(uvrt_job_s* job) noexcept;

void drop_holder(uvrt_job_s* job) noexcept {
  if (--job->holders == 0) delete_handle(job);
}

// Runs on the worker: the C work function, with `worker` telling uvrt_job_fail who may call it.
outcome run_work(uvrt_job_s* job) {
  job->worker.store(std::this_thread::get_id(), std::memory_order_relaxed);
  struct not_running {
    uvrt_job_s* job;
    ~not_running() { job->worker.store(std::thread::id(), std::memory_order_relaxed); }
  } guard{job};
  void* result = nullptr;
  const int status = job->work(job, job->arg, &result);
  return {status, result};
}

void link(uvrt_job_s* job) noexcept {
  uvrt_runtime_s* rt = job->runtime;
  job->next = rt->pending;
  if (rt->pending) rt->pending->prev = job;
  rt->pending = job;
}

void unlink(uvrt_job_s* job) noexcept {
  if (job->prev) job->prev->next = job->next;
  else job->runtime->pending = job->next;
  if (job->next) job->next->prev = job->prev;
}

// Handles come from the same per-thread block cache as the C++ jobs: a windowed workload frees
// one and allocates the next on the loop thread for every job.
uvrt_job_s* new_handle() noexcept {
  try {
    return ::new (uvrt::detail::allocate_block(sizeof(uvrt_job_s))) uvrt_job_s;
  } catch (...) {
    return nullptr;
  }
}

void delete_handle(uvrt_job_s* job) noexcept {
  job->~uvrt_job_s();
  uvrt::detail::free_block(job, sizeof(uvrt_job_s));
}

// The continuation: the core calls it on the loop thread once the C++ job has settled.
void settle(uvrt::detail::continuation* self) noexcept {
  auto* job = static_cast<uvrt_job_s*>(self);
  uvrt::detail::core* core = job->runtime->core;
  outcome out{UVRT_ECANCELED, nullptr};
  try {
    out = uvrt::detail::adopt_future<outcome>(std::exchange(job->job, nullptr)).get();
  } catch (const uvrt::cancelled_error&) {
    out.status = UVRT_ECANCELED;
  } catch (const std::exception& e) {
    // Only a work function written in C++ can throw; its exception stops here.
    out.status = UVRT_EEXCEPTION;
    uvrt::c_api::set_message(job, e.what());
  } catch (...) {
    out.status = UVRT_EEXCEPTION;
    uvrt::c_api::set_message(job, "an exception not derived from std::exception");
  }
  unlink(job);
  job->runtime = nullptr;
  if (job->done) {
    try {
      job->done(job, out.status, out.result, job->arg);
    } catch (...) {
      // A done callback written in C++ threw: uvrt_runtime_run reports it.
      uvrt::detail::report_unhandled(core, std::current_exception());
    }
  }
  drop_holder(job);
}

}  // namespace

namespace uvrt::c_api {

void stop_all(uvrt_runtime_s* runtime) noexcept {
  // detail::cancel uv_cancels a queued job and reports a running one as stop_requested; C jobs
  // have no stop_source, so nothing is told to stop until the second pass.
  for (uvrt_job_s* j = runtime->pending; j; j = j->next) {
    try {
      j->stopping = detail::cancel(j->job, cancel_mode::wait, &detail::release<outcome>) == cancel_result::stop_requested;
    } catch (...) {
      j->stopping = true;  // cannot happen on the loop thread; asking it to stop is the safe side
    }
  }
  for (uvrt_job_s* j = runtime->pending; j; j = j->next) {
    if (j->stopping) j->stop_requested.store(true, std::memory_order_relaxed);
  }
}

}  // namespace uvrt::c_api

extern "C" {

int uvrt_job_submit(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work, uvrt_done_cb done, void* arg) {
  if (!runtime || !work) return UVRT_EINVAL;
  uvrt::detail::core* core = runtime->core;
  if (std::this_thread::get_id() != core->owner) return UVRT_ETHREAD;
  if (core->closing) return UVRT_ECLOSING;
  uvrt_job_s* j = new_handle();
  if (!j) return UVRT_ENOMEM;
  j->resume = &settle;
  j->runtime = runtime;
  j->owner = core->owner;
  j->work = work;
  j->done = done;
  j->arg = arg;
  j->holders = job ? 2 : 1;
  try {
    j->job = uvrt::detail::make_job<outcome>(core, [j] { return run_work(j); });
  } catch (...) {
    delete_handle(j);
    return uvrt::c_api::error_of_current_exception();
  }
  j->job->cont = j;  // set before the loop can run the after-work callback, which reads it
  link(j);
  if (job) *job = j;
  return 0;
}

int uvrt_job_cancel(uvrt_job_t* job) {
  if (!job) return UVRT_EINVAL;
  if (!on_owner_thread(job)) return UVRT_ETHREAD;
  if (job->settled()) return UVRT_EALREADY;
  try {
    switch (uvrt::detail::cancel(job->job, uvrt::cancel_mode::wait, &uvrt::detail::release<outcome>)) {
      case uvrt::cancel_result::not_started:
        return 0;
      case uvrt::cancel_result::stop_requested:
        job->stop_requested.store(true, std::memory_order_relaxed);
        return UVRT_EBUSY;
      default:
        return UVRT_EALREADY;
    }
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
}

int uvrt_job_stop_requested(const uvrt_job_t* job) {
  return job && job->stop_requested.load(std::memory_order_relaxed) ? 1 : 0;
}

int uvrt_job_fail(uvrt_job_t* job, int code, const char* message) {
  if (!job || code == 0) return UVRT_EINVAL;
  if (job->worker.load(std::memory_order_relaxed) != std::this_thread::get_id()) return UVRT_ETHREAD;
  if (message) uvrt::c_api::set_message(job, message);
  else job->message_text = nullptr;
  return code;
}

const char* uvrt_job_message(const uvrt_job_t* job) {
  if (!job || !on_owner_thread(job) || !job->settled()) return nullptr;
  return job->message_text;
}

int uvrt_job_release(uvrt_job_t* job) {
  if (!job) return UVRT_EINVAL;
  if (!on_owner_thread(job)) return UVRT_ETHREAD;
  drop_holder(job);
  return 0;
}

}  // extern "C"
