// uvrt_job_*: submitting work from C, cancelling it, and delivering its outcome to the done
// callback. See handles.hpp for the invariants.
#include <cstddef>
#include <exception>
#include <new>
#include <thread>

#include "drive.hpp"
#include "handles.hpp"

namespace {

using uvrt::detail::job_core;
using uvrt::detail::job_state;

uvrt_job_s* handle_of(job_core* j) noexcept { return reinterpret_cast<uvrt_job_s*>(j); }

bool on_owner_thread(const uvrt_job_t* job) noexcept { return std::this_thread::get_id() == job->owner; }

// The size of a job's block: the C job, and the limiter prefix in front of it if it has one.
std::size_t block_size(bool limited) noexcept { return (limited ? uvrt::detail::limiter_prefix : 0) + sizeof(uvrt_job_s); }

void release(job_core* j) noexcept {
  if (j->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  uvrt_job_s* job = handle_of(j);
  void* const block = uvrt::detail::block_of(j);  // read before the job is destroyed
  const std::size_t size = block_size(j->flags & uvrt::detail::flag_limited);
  uvrt::c_api::free_message(job);
  job->~uvrt_job_s();
  uvrt::detail::free_block(block, size);
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
  j->outcome = job_state::value;
  uvrt::detail::exchange_worker_core(previous);
}

// On the loop thread, in the job's slice: publishes the settlement, then calls done.
void finish(job_core* j) noexcept {
  uvrt_job_s* job = handle_of(j);
  uvrt::detail::core* core = j->owner;
  if (j->flags & uvrt::detail::flag_never_ran) {
    job->status = UVRT_ECANCELED;
    job->result = nullptr;
  }
  uvrt::detail::complete(j);
  if (job->done) {
    uvrt::detail::callback_scope scope(*core);
    try {
      job->done(job, job->status, job->result, job->arg);
    } catch (...) {
      // A done callback written in C++ threw: uvrt_runtime_run reports it.
      uvrt::detail::report_unhandled(core, std::current_exception());
    }
  }
  release(j);
}

void request_stop(job_core* j) noexcept { handle_of(j)->stop_requested.store(true, std::memory_order_relaxed); }

constexpr uvrt::detail::job_vtable c_job_table{&run, &finish, &request_stop, &release, nullptr};

// uvrt_job_options_t's fields this version reads, in the order the struct has them.
constexpr std::size_t job_options_known = offsetof(uvrt_job_options_t, limiter) + sizeof(uvrt_limiter_t*);
static_assert(job_options_known == sizeof(uvrt_job_options_t), "a field of uvrt_job_options_t is not read");

// The limiter `options` names (null for none), or UVRT_EINVAL for a struct of the wrong size.
int read_job_options(const uvrt_job_options_t* options, uvrt_limiter_t** limiter) noexcept {
  *limiter = nullptr;
  if (!options) return 0;
  if (options->size < job_options_known || options->size > uvrt::c_api::sized_struct_limit) return UVRT_EINVAL;
  // A newer uvrt.h's struct: its fields beyond ours ask for something this version cannot do,
  // unless they are all 0 (their defaults).
  const unsigned char* const bytes = reinterpret_cast<const unsigned char*>(options);
  for (std::size_t i = job_options_known; i < options->size; ++i)
    if (bytes[i] != 0) return UVRT_EINVAL;
  *limiter = options->limiter;
  return 0;
}

}  // namespace

extern "C" {

int uvrt_job_submit(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work, uvrt_done_cb done, void* arg) {
  return uvrt_job_submit_ex(runtime, job, work, done, arg, nullptr);
}

int uvrt_job_submit_ex(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work, uvrt_done_cb done, void* arg,
                       const uvrt_job_options_t* options) {
  if (!runtime || !work) return UVRT_EINVAL;
  uvrt_limiter_t* limiter;
  if (const int rc = read_job_options(options, &limiter)) return rc;
  uvrt::detail::core* core = runtime->core;
  if (core->inherited()) return UVRT_EFORKED;
  if (std::this_thread::get_id() != core->owner) return UVRT_ETHREAD;
  if (!core->takes_work()) return UVRT_ECLOSING;
  // detail::check_submit's rules, answered with codes: a refusal is an ordinary outcome for a
  // runtime with max_queued (load shedding), too frequent for an exception each.
  if (core->max_queued != 0 && core->waiting_jobs() >= core->max_queued) return UVRT_EQUEUEFULL;
  const std::size_t size = block_size(limiter != nullptr);
  // Blocks come from the same per-thread cache as the C++ jobs: a windowed workload frees one
  // and allocates the next on the loop thread for every job.
  void* block;
  try {
    if (limiter) core->tokens_.reserve_one();  // the runtime's room to count a job waiting for a token
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
  uvrt::detail::submit(core, &j->job);
  if (job) *job = j;
  return 0;
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
  return job->message;
}

int uvrt_job_release(uvrt_job_t* job) {
  if (!job) return UVRT_EINVAL;
  if (!on_owner_thread(job)) return UVRT_ETHREAD;
  release(&job->job);
  return 0;
}

}  // extern "C"
