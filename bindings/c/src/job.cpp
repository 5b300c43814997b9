// uvrt_job_*: submitting work from C, cancelling it, and delivering its outcome to the done
// callback, or UVRT_ETIMEDOUT when its timeout comes first. See handles.hpp for the invariants.
//
// A timeout, as uvrt::timeout does it in C++ (runtime/include/uvrt/time.hpp), but on the job
// itself instead of a second future: a timer entry in the job's block, on its runtime's heap.
//   armed   -> (the job settles)   disarmed by finish; the job's own outcome
//           -> (the deadline)      cancelled before it ran, or the user cancelled it: no change
//                                  but the status (UVRT_ETIMEDOUT instead of ECANCELED if it was
//                                  the timeout that cancelled it); its work returned already: no
//                                  change; running: asked to stop, and either settled now
//                                  (grace 0) or armed again for the end of the grace period
//   grace   -> (the job settles)   UVRT_ETIMEDOUT, its outcome dropped
//           -> (the deadline)      settled now (core::abandon), done gets UVRT_ETIMEDOUT; the late
//                                  outcome is dropped when the work returns
// The teardown fires every entry early: the timer is dropped and the job follows the teardown's
// rules (an expired timeout still makes its status UVRT_ETIMEDOUT).
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <thread>
#include <type_traits>

#include "drive.hpp"
#include "handles.hpp"

namespace {

using uvrt::detail::job_core;
using uvrt::detail::job_state;

uvrt_job_s* handle_of(job_core* j) noexcept { return reinterpret_cast<uvrt_job_s*>(j); }

bool on_owner_thread(const uvrt_job_t* job) noexcept { return std::this_thread::get_id() == job->owner; }

using uvrt::c_api::c_timeout;
using uvrt::c_api::timeout_of;

// The size of a job's block: the C job, the limiter prefix in front of it and the timeout behind
// it if it has them.
std::size_t block_size(bool limited, bool timed) noexcept {
  return (limited ? uvrt::detail::limiter_prefix : 0) + sizeof(uvrt_job_s) + (timed ? sizeof(c_timeout) : 0);
}

static_assert(std::is_trivially_destructible_v<c_timeout>, "release does not destroy a job's c_timeout");

void release(job_core* j) noexcept {
  if (j->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  uvrt_job_s* job = handle_of(j);
  void* const block = uvrt::detail::block_of(j);  // read before the job is destroyed
  // Any size of the block's class will do (job.hpp): the class was stored at submission.
  const std::size_t size = uvrt::detail::block_class_size(j->size_class);
  uvrt::c_api::free_message(job);
  job->~uvrt_job_s();
  uvrt::detail::free_block(block, size);
}

// Calls the done callback, on the loop thread, with the job settled. Inlined into finish, on
// every job's path.
[[gnu::always_inline]] inline void call_done(uvrt_job_s* job, uvrt::detail::core* core, int status,
                                             void* result) noexcept {
  if (!job->done) return;
  uvrt::detail::callback_scope scope(*core);
  try {
    job->done(job, status, result, job->arg);
  } catch (...) {
    // A done callback written in C++ threw: uvrt_runtime_run reports it.
    uvrt::detail::report_unhandled(core, std::current_exception());
  }
}

// Milliseconds as a duration, saturated: uvrt::detail::deadline_after takes it from there.
std::chrono::nanoseconds ms_to_ns(std::uint64_t ms) noexcept {
  constexpr std::uint64_t max_ms = std::numeric_limits<std::int64_t>::max() / 1'000'000;
  return ms > max_ms ? std::chrono::nanoseconds::max() : std::chrono::milliseconds(ms);
}

// The timer entry's fire: see the state table at the top of this file. Loop thread.
void timeout_fired(uvrt::detail::timer_entry* e, bool torn_down) noexcept {
  auto* t = static_cast<c_timeout*>(e);
  if (torn_down) return;  // the teardown's rules decide; finish disarms nothing, which is fine
  uvrt_job_s* job = t->job;
  job_core* j = &job->job;
  uvrt::detail::core* core = j->owner;
  if (!t->in_grace) {
    // Cancelled before it ran (by uvrt_job_cancel), or its work returned in time: its own outcome.
    if (j->flags & uvrt::detail::flag_never_ran) return;
    if (t->returned.load(std::memory_order_acquire)) return;
    t->expired = true;
    // Queued or waiting for a token: it never runs, and settles on this turn with UVRT_ETIMEDOUT.
    if (core->dispatch_.cancel_if_queued(j)) return;
    // Running (or taken by a carrier, about to): asked to stop.
    job->stop_requested.store(true, std::memory_order_relaxed);
    if (t->grace != std::chrono::nanoseconds::zero()) {
      t->in_grace = true;
      // The heap has the room this entry had a moment ago.
      uvrt::detail::arm(core, t, uvrt::detail::deadline_after(t->grace));
      return;
    }
  }
  // Given up on while its work still runs: settled now, its outcome dropped when it returns.
  // A C job has no continuation, so the abandon defers nothing and cannot fail.
  core->abandon(j);
  call_done(job, core, UVRT_ETIMEDOUT, nullptr);
}

// On the worker: the C work function, with `worker` telling uvrt_job_fail who may call it.
void run(job_core* j) noexcept {
  uvrt_job_s* job = handle_of(j);
  uvrt::detail::core* previous = uvrt::detail::exchange_worker_core(j->owner);
  job->worker.store(std::this_thread::get_id(), std::memory_order_relaxed);
  job->result = nullptr;
  try {
    job->status = job->work(job, job->arg, &job->result);
  } catch (const std::exception& e) {
    // Only a work function written in C++ can throw; its exception stops here.
    job->status = UVRT_EEXCEPTION;
    uvrt::c_api::set_message(job, e.what());
  } catch (...) {
    job->status = UVRT_EEXCEPTION;
    uvrt::c_api::set_message(job, "an exception not derived from std::exception");
  }
  job->worker.store(std::thread::id(), std::memory_order_relaxed);
  // `timed` was set before submission: the dispatch lock ordered it before this read.
  if (job->timed) [[unlikely]] timeout_of(job)->returned.store(true, std::memory_order_release);
  j->outcome = job_state::value;
  uvrt::detail::exchange_worker_core(previous);
}

// finish for a job with a timeout, out of the common path.
[[gnu::noinline, gnu::cold]] void finish_timed(job_core* j) noexcept {
  uvrt_job_s* job = handle_of(j);
  uvrt::detail::core* core = j->owner;
  if (j->flags & uvrt::detail::flag_abandoned) {
    // Its done callback got UVRT_ETIMEDOUT already: the late outcome is dropped.
    uvrt::detail::complete(j);
    release(j);
    return;
  }
  c_timeout* t = timeout_of(job);
  uvrt::detail::disarm(core, t);
  if (t->expired) {
    // Cancelled by its timeout, or returned after it (in the grace period): what the work
    // function returned, if it ran, is dropped.
    job->status = UVRT_ETIMEDOUT;
    job->result = nullptr;
    uvrt::c_api::free_message(job);
  } else if (j->flags & uvrt::detail::flag_never_ran) {
    job->status = UVRT_ECANCELED;
    job->result = nullptr;
  }
  uvrt::detail::complete(j);
  call_done(job, core, job->status, job->result);
  release(j);
}

// On the loop thread, in the job's slice: publishes the settlement, then calls done.
void finish(job_core* j) noexcept {
  uvrt_job_s* job = handle_of(j);
  // Only a timeout abandons a C job (the C API has no shutdown and no cancel_mode::abandon), so
  // a job without one pays a single test here.
  assert(job->timed || !(j->flags & uvrt::detail::flag_abandoned));
  if (job->timed) [[unlikely]] {
    finish_timed(j);
    return;
  }
  uvrt::detail::core* core = j->owner;
  if (j->flags & uvrt::detail::flag_never_ran) {
    job->status = UVRT_ECANCELED;
    job->result = nullptr;
  }
  uvrt::detail::complete(j);
  call_done(job, core, job->status, job->result);
  release(j);
}

void request_stop(job_core* j) noexcept { handle_of(j)->stop_requested.store(true, std::memory_order_relaxed); }

constexpr uvrt::detail::job_vtable c_job_table{&run, &finish, &request_stop, &release, nullptr};

// uvrt_job_options_t's fields this version reads, in the order the struct has them.
constexpr std::size_t job_options_known = offsetof(uvrt_job_options_t, grace_ms) + sizeof(std::uint64_t);
static_assert(job_options_known == sizeof(uvrt_job_options_t), "a field of uvrt_job_options_t is not read");
// The struct of uvrt.h before timeout_ms and grace_ms: programs built against it pass this size.
constexpr std::size_t job_options_limiter_only = offsetof(uvrt_job_options_t, limiter) + sizeof(uvrt_limiter_t*);

struct job_options {
  uvrt_limiter_t* limiter = nullptr;
  std::uint64_t timeout_ms = 0;
  std::uint64_t grace_ms = 0;
};

// What `options` asks for (all defaults for null), or UVRT_EINVAL for a struct of the wrong size.
// Called for non-null options only.
int read_job_options(const uvrt_job_options_t* options, job_options* out) noexcept {
  const std::size_t size = options->size;
  if (size == job_options_limiter_only) {
    // An older uvrt.h's struct: the fields it does not have are read as 0, and never touched.
    out->limiter = options->limiter;
    return 0;
  }
  if (size < job_options_known || size > uvrt::c_api::sized_struct_limit) return UVRT_EINVAL;
  // A newer uvrt.h's struct: its fields beyond ours ask for something this version cannot do,
  // unless they are all 0 (their defaults).
  const unsigned char* const bytes = reinterpret_cast<const unsigned char*>(options);
  for (std::size_t i = job_options_known; i < size; ++i)
    if (bytes[i] != 0) return UVRT_EINVAL;
  out->limiter = options->limiter;
  out->timeout_ms = options->timeout_ms;
  out->grace_ms = options->grace_ms;
  return 0;
}

}  // namespace

extern "C" {

int uvrt_job_submit(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work, uvrt_done_cb done, void* arg) {
  return uvrt_job_submit_ex(runtime, job, work, done, arg, nullptr);
}

}  // extern "C"

namespace {

// uvrt_job_submit_ex once the options are read: inlined twice, so that a job submitted without
// options gets this with the limiter and the timeout folded away.
[[gnu::always_inline]] inline int submit_job(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work,
                                             uvrt_done_cb done, void* arg, const job_options& opts) {
  uvrt_limiter_t* const limiter = opts.limiter;
  const bool timed = opts.timeout_ms != 0;
  uvrt::detail::core* core = runtime->core;
  if (core->inherited()) return UVRT_EFORKED;
  if (std::this_thread::get_id() != core->owner) return UVRT_ETHREAD;
  if (!core->takes_work()) return UVRT_ECLOSING;
  // detail::check_submit's rules, answered with codes: a refusal is an ordinary outcome for a
  // runtime with max_queued (load shedding), too frequent for an exception each.
  if (core->max_queued != 0 && core->waiting_jobs() >= core->max_queued) return UVRT_EQUEUEFULL;
  const std::size_t size = block_size(limiter != nullptr, timed);
  // Blocks come from the same per-thread cache as the C++ jobs: a windowed workload frees one
  // and allocates the next on the loop thread for every job.
  void* block;
  try {
    if (limiter) core->tokens_.reserve_one();  // the runtime's room to count a job waiting for a token
    if (timed) uvrt::detail::reserve_timer(core);  // room in the heap, so that arming cannot fail
    block = uvrt::detail::allocate_block(size);
  } catch (...) {
    return UVRT_ENOMEM;
  }
  const std::size_t prefix = limiter ? uvrt::detail::limiter_prefix : 0;
  uvrt_job_s* j = ::new (static_cast<char*>(block) + prefix) uvrt_job_s;
  j->job.vt = &c_job_table;
  j->job.cont = nullptr;
  j->job.state.store(job_state::pending, std::memory_order_relaxed);
  j->job.outcome = job_state::pending;
  j->job.flags = limiter ? uvrt::detail::flag_limited : 0;
  if (limiter) uvrt::detail::limiter_of(&j->job) = limiter->lim.state();
  j->job.size_class = static_cast<std::uint8_t>(uvrt::detail::block_class(size));
  j->job.refs.store(job ? 2 : 1, std::memory_order_relaxed);  // the runtime, and the application
  j->owner = core->owner;
  j->work = work;
  j->done = done;
  j->arg = arg;
  j->result = nullptr;
  j->message = nullptr;
  j->status = 0;
  j->stop_requested.store(false, std::memory_order_relaxed);
  j->timed = timed;
  if (timed) [[unlikely]] {
    c_timeout* t = ::new (static_cast<void*>(timeout_of(j))) c_timeout;
    t->fire = &timeout_fired;
    t->job = j;
    t->grace = ms_to_ns(opts.grace_ms);
    // From submission: armed before the job is handed over (which cannot settle it).
    uvrt::detail::arm(core, t, uvrt::detail::deadline_after(ms_to_ns(opts.timeout_ms)));
  }
  uvrt::detail::submit(core, &j->job);
  if (job) *job = j;
  return 0;
}

[[gnu::noinline]] int submit_with_options(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work,
                                          uvrt_done_cb done, void* arg, const uvrt_job_options_t* options) {
  job_options opts;
  if (const int rc = read_job_options(options, &opts)) return rc;
  return submit_job(runtime, job, work, done, arg, opts);
}

}  // namespace

extern "C" {

int uvrt_job_submit_ex(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work, uvrt_done_cb done, void* arg,
                       const uvrt_job_options_t* options) {
  if (!runtime || !work) return UVRT_EINVAL;
  if (options) return submit_with_options(runtime, job, work, done, arg, options);
  return submit_job(runtime, job, work, done, arg, job_options{});
}

int uvrt_job_cancel(uvrt_job_t* job) {
  if (!job) return UVRT_EINVAL;
  if (!on_owner_thread(job)) {
    // A child forked on another thread has no loop thread at all: a pending job there is the
    // parent's (its core, inherited, is never freed, and the child has no other thread). In the
    // parent the core is not touched off its thread: it may be freed meanwhile.
    if (uvrt::detail::core::in_forked_child() && !job->settled() && job->job.owner->inherited()) return UVRT_EFORKED;
    return UVRT_ETHREAD;
  }
  if (job->settled()) return UVRT_EALREADY;
  // Pending, so its core exists (in a forked child, the inherited one is never freed).
  if (job->job.owner->inherited()) return UVRT_EFORKED;
  try {
    if (uvrt::detail::cancel(&job->job, uvrt::cancel_mode::wait) == uvrt::cancel_result::not_started) return 0;
    // Running, or run and waiting for its slice: either way it can only be asked to stop.
    job->stop_requested.store(true, std::memory_order_relaxed);
    return UVRT_EBUSY;
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
  uvrt::c_api::set_message(job, message);
  return code;
}

const char* uvrt_job_message(const uvrt_job_t* job) {
  if (!job || !on_owner_thread(job) || !job->settled()) return nullptr;
  // Timed out: the message was dropped with the outcome, or a work function still running may
  // be writing it.
  if (job->timed && timeout_of(job)->expired) return nullptr;
  return job->message;
}

int uvrt_job_release(uvrt_job_t* job) {
  if (!job) return UVRT_EINVAL;
  if (!on_owner_thread(job)) return UVRT_ETHREAD;
  release(&job->job);
  return 0;
}

}  // extern "C"
