// The job block: one allocation per to_thread call, shared by the runtime, the worker and the future.
//
// Layout, in one block from allocate_block (::operator new behind a small per-thread cache):
//
//   [ limiter pointer (only with a limiter) | job_core | std::stop_source (only if the callable
//     takes a stop_token) | slot ]
//
// The slot holds, one after the other and never at the same time: the bound callable (from
// submission until it has run, on the worker), then either its result or the exception_ptr it
// threw. Overlapping them keeps a job that returns an int at 64 bytes. The block holds no
// uv_work_t: a runtime's carriers (runtime/src/dispatch.hpp), a few uv_work_t of its own, take its
// jobs from its queue on the pool's threads, so a job waiting in a queue of a million costs its 64
// bytes instead of the 128 of a libuv request. A burst of jobs is dominated by memory traffic:
// every 16 bytes added to bare libuv's job cost a measured 9% of a burst's wall time.
//
// Ownership: a reference count with at most two owners, the future and the runtime (from
// submission until the job has settled). Whoever drops the last reference destroys what the slot
// holds and frees the block. A continuation parked in a deferred list holds a third reference.
//
// Threads: `state` is the only field read across threads (ready() from anywhere, acquire).
// `outcome` and the slot are written by the worker and read on the loop thread after the
// dispatch lock has ordered them; the worker reads `stamp` and `vt` after that lock. While a job
// is in its runtime's queue, its links are the dispatch lock's; while it waits for a limiter's
// token, its limiter's lock's. Every other field is touched on the loop thread only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <new>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../cancel.hpp"
#include "../export.h"
#include "../limiter.hpp"
#include "../options.hpp"

namespace uvrt::detail {

class core;

// Something waiting for a job to settle: a suspended coroutine or a callback holder. It is
// resumed on the loop thread, at most once.
//
// `reader` is the future object a suspended coroutine will read the outcome from, or null. A
// future that is moved while awaited re-points it; a future dropped while awaited hands its
// reference to the continuation instead (reader becomes null), so the waiter never reads a
// future object that is gone.
struct continuation {
  void (*resume)(continuation* self) noexcept;
  void* reader = nullptr;
};

enum class job_state : std::uint8_t { pending, value, error, cancelled };

struct job_core;

// What the core needs to know about one kind of job, one table per job type (not per job).
struct job_vtable {
  // On a worker: runs the work and leaves the outcome in the block. Must not throw.
  void (*run)(job_core* j) noexcept;
  // On the loop thread, once the job has run or was cancelled before it could, and it is its
  // turn in the runtime's slices: settles the job and drops the runtime's reference.
  void (*finish)(job_core* j) noexcept;
  // On the loop thread, for a job that is running: asks it to stop. Null if it cannot be asked.
  void (*request_stop)(job_core* j) noexcept;
  // Drops one reference; the last one destroys the outcome and frees the block.
  void (*release)(job_core* j) noexcept;
  // For a loop operation's cell (op.hpp): future::cancel, handed to the op. Null for a job.
  cancel_result (*cancel)(job_core* j, cancel_mode mode);
};

// A job's `flags` byte. The low two bits are its place in its runtime (see runtime/src/dispatch.hpp
// and settle.hpp; changed only through move_job there, which asserts each transition); the other
// bits record what happened to it. All of it belongs to the loop thread.
enum class job_place : std::uint8_t {
  taken = 0,       // being built or handed to the runtime: in no list yet
  limited = 1,     // waits for a token of its limiter (runtime/src/tokens.hpp)
  dispatched = 2,  // in the runtime's queue, or taken from it by a carrier: running, or returned
  arrived = 3,     // back on the loop thread (or cancelled before it ran): waits to settle
};
inline constexpr std::uint8_t place_bits = 3;
inline constexpr std::uint8_t flag_stop_source = 4;  // a std::stop_source precedes the slot
inline constexpr std::uint8_t flag_never_ran = 8;    // cancelled before it ran: the callable is still in the slot
inline constexpr std::uint8_t flag_limited = 16;     // a limiter pointer precedes the job_core
inline constexpr std::uint8_t flag_abandoned = 32;   // settled early (abandon, or shutdown's timeout); drop the late outcome
inline constexpr std::uint8_t flag_straggler = 64;   // still running when shutdown() timed out

struct limiter_state;

struct job_core {
  const job_vtable* vt;
  core* owner;
  // Limited or queued: the links of the limiter's or the runtime's queue (`prev` is a mark once a
  // carrier took it). Returned: `next` links the carriers' returns, then the backlog of jobs
  // waiting for their slice.
  job_core* prev;
  job_core* next;
  // When it was submitted, in ticks (runtime/src/latency.hpp): the start of its wait.
  std::uint64_t stamp;
  continuation* cont;
  std::atomic<std::uint32_t> refs;
  std::atomic<job_state> state;
  job_state outcome;  // what the worker produced: value or error (cancelled if never run)
  std::uint8_t flags;
  std::uint8_t size_class;  // block_class of the block's size, for free_block
};

inline core* core_of(const job_core* j) noexcept { return j->owner; }

// A job submitted with a limiter carries the limiter's state in front of its job_core, so that a
// job without one pays nothing for the feature. 16 bytes keep the job_core's alignment.
inline constexpr std::size_t limiter_prefix = 16;
inline limiter_state*& limiter_of(job_core* j) noexcept {
  return *reinterpret_cast<limiter_state**>(reinterpret_cast<char*>(j) - limiter_prefix);
}
// The start of the block the job lives in.
inline void* block_of(job_core* j) noexcept {
  return (j->flags & flag_limited) ? static_cast<void*>(reinterpret_cast<char*>(j) - limiter_prefix) : j;
}

// Objects stored in the block may not need more alignment than ::operator new gives (blocks are
// ::operator new allocations, cached or not).
template <class X>
constexpr bool fits_block_check() noexcept {
  if constexpr (std::is_void_v<X>) return true;
  else return alignof(X) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
}
template <class X>
inline constexpr bool fits_block = fits_block_check<X>();

constexpr std::size_t align_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) & ~(a - 1); }

constexpr std::size_t slot_offset(bool stop, std::size_t align) noexcept {
  return align_up(sizeof(job_core) + (stop ? sizeof(std::stop_source) : 0), align);
}

// Where an X lives in the slot. The worker uses the compile-time form: `flags` belongs to the
// loop thread, which may change it (abandon) while the job runs.
template <class X, bool Stop>
X* slot_at(job_core* j) noexcept {
  return std::launder(reinterpret_cast<X*>(reinterpret_cast<char*>(j) + slot_offset(Stop, alignof(X))));
}

template <class X>
X* slot(job_core* j) noexcept {
  return (j->flags & flag_stop_source) ? slot_at<X, true>(j) : slot_at<X, false>(j);
}

inline std::stop_source* stop_source_of(job_core* j) noexcept {
  return std::launder(reinterpret_cast<std::stop_source*>(reinterpret_cast<char*>(j) + sizeof(job_core)));
}

// Destroys whatever outcome the slot holds; the state says which.
template <class R>
void destroy_outcome(job_core* j, job_state s) noexcept {
  if (s == job_state::error) {
    slot<std::exception_ptr>(j)->~exception_ptr();
  } else if constexpr (!std::is_void_v<R>) {
    if (s == job_state::value) slot<R>(j)->~R();
  }
}

// Job blocks come from a small per-thread cache in front of ::operator new (see blocks.cpp),
// kept by size class: class c holds blocks of up to 16c - 8 bytes, what fits in glibc's 16c-byte
// chunks after their header, so caching costs no memory over plain ::operator new. Class 0: not
// cached (a size over 4072 bytes, or unknown). free_block takes the size allocate_block was
// given, or any size of the same class.
constexpr std::size_t block_class(std::size_t size) noexcept { return size == 0 || size > 4072 ? 0 : (size + 23) / 16; }
constexpr std::size_t block_class_size(std::size_t c) noexcept { return c == 0 ? 0 : 16 * c - 8; }
UVRT_EXTERN void* allocate_block(std::size_t size);
UVRT_EXTERN void free_block(void* p, std::size_t size) noexcept;

// Drops one reference; the last one destroys the outcome and frees the block.
template <class R>
void release(job_core* j) noexcept {
  if (j->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // An abandoned job's outcome was destroyed when it arrived, and its state says cancelled.
  destroy_outcome<R>(j, j->state.load(std::memory_order_relaxed));
  if (j->flags & flag_stop_source) stop_source_of(j)->~stop_source();
  free_block(block_of(j), block_class_size(j->size_class));
}

// The callable and its arguments, decay-copied at submission as std::thread does, and invoked
// once as rvalues. If the callable accepts a std::stop_token first, it gets one.
template <class F, class... Args>
struct bound_call {
  static constexpr bool takes_stop_token = std::is_invocable_v<F, std::stop_token, Args...>;
  using result_type = std::conditional_t<takes_stop_token,
                                         std::invoke_result<F, std::stop_token, Args...>,
                                         std::invoke_result<F, Args...>>;

  F fn;
  std::tuple<Args...> args;

  decltype(auto) operator()([[maybe_unused]] std::stop_token token) {
    return std::apply(
        [&](Args&... a) -> decltype(auto) {
          if constexpr (takes_stop_token) {
            return std::invoke(std::move(fn), std::move(token), std::move(a)...);
          } else {
            return std::invoke(std::move(fn), std::move(a)...);
          }
        },
        args);
  }
};

// Sets which runtime's job the current worker thread is running, for uvrt::from_thread.
UVRT_EXTERN core* exchange_worker_core(core* c) noexcept;

// Settles the job's future (unless it was abandoned) and resumes its continuation.
UVRT_EXTERN void complete(job_core* j) noexcept;

// The job table for one job type. No function lets an exception escape: the worker catches
// everything the callable throws, and finish only moves and destroys already-built objects.
template <class Call, class R>
struct job_ops {
  static constexpr bool stop = Call::takes_stop_token;

  static void run(job_core* j) noexcept {
    core* previous = exchange_worker_core(core_of(j));
    Call* call = slot_at<Call, stop>(j);
    bool call_alive = true;
    std::stop_token token;
    if constexpr (stop) token = stop_source_of(j)->get_token();
    try {
      if constexpr (std::is_void_v<R>) {
        (*call)(std::move(token));
        call->~Call();
        call_alive = false;
      } else {
        // The result cannot be built in the slot while the callable that computes it lives
        // there, so it is built on the stack and moved in once the callable is gone.
        R result = (*call)(std::move(token));
        call->~Call();
        call_alive = false;
        ::new (static_cast<void*>(slot_at<R, stop>(j))) R(std::move(result));
      }
      j->outcome = job_state::value;
    } catch (...) {
      if (call_alive) call->~Call();
      ::new (static_cast<void*>(slot_at<std::exception_ptr, stop>(j))) std::exception_ptr(std::current_exception());
      j->outcome = job_state::error;
    }
    exchange_worker_core(previous);
  }

  static void finish(job_core* j) noexcept {
    if (j->flags & flag_never_ran) slot<Call>(j)->~Call();
    if (j->flags & flag_abandoned) {
      destroy_outcome<R>(j, j->outcome);
      j->outcome = job_state::cancelled;
    }
    complete(j);
    release<R>(j);
  }

  static void request_stop(job_core* j) noexcept { stop_source_of(j)->request_stop(); }

  static constexpr job_vtable table{&run, &finish, stop ? &request_stop : nullptr, &release<R>, nullptr};
};

// Throws usage_error off the loop thread, runtime_closed_error once teardown began, and
// queue_full_error when options::max_queued jobs wait. Called before a job is built, so a refused
// call leaves the caller's callable and arguments alone.
UVRT_EXTERN void check_submit(core* c, const job_options& opts);

// Gives a job whose fields are set (vt, cont, refs, state, outcome, flags, size_class, and its
// limiter if flag_limited) to the runtime: it waits for its limiter's token, or is queued for the
// carriers. Cannot fail.
UVRT_EXTERN void submit(core* c, job_core* j) noexcept;

// Builds a job for `f(args...)` and submits it; returns the job with the future's reference.
template <class R, class F, class... Args>
job_core* make_job(core* c, const job_options& opts, F&& f, Args&&... args) {
  check_submit(c, opts);
  using Call = bound_call<std::decay_t<F>, std::decay_t<Args>...>;
  static_assert(fits_block<Call>, "uvrt::to_thread: over-aligned callables are not supported");
  // The callable is destroyed on a worker (or on the loop thread, if it never ran) where an
  // exception from its destructor could only end in std::terminate or a double destruction.
  static_assert(std::is_nothrow_destructible_v<Call>,
                "uvrt::to_thread: the callable and its arguments must be nothrow destructible");
  constexpr bool stop = Call::takes_stop_token;
  constexpr std::size_t tail = [] {
    std::size_t n = slot_offset(stop, alignof(Call)) + sizeof(Call);
    const std::size_t e = slot_offset(stop, alignof(std::exception_ptr)) + sizeof(std::exception_ptr);
    n = n > e ? n : e;
    if constexpr (!std::is_void_v<R>) {
      const std::size_t r = slot_offset(stop, alignof(R)) + sizeof(R);
      n = n > r ? n : r;
    }
    return n;
  }();

  const std::size_t prefix = opts.limiter ? limiter_prefix : 0;
  const std::size_t size = prefix + tail;
  void* raw = allocate_block(size);
  // Default-initialised, not zeroed: the links are set when the runtime takes the job.
  auto* j = ::new (static_cast<char*>(raw) + prefix) job_core;
  j->vt = &job_ops<Call, R>::table;
  j->cont = nullptr;
  j->state.store(job_state::pending, std::memory_order_relaxed);
  j->outcome = job_state::pending;
  j->flags = static_cast<std::uint8_t>((stop ? flag_stop_source : 0) | (opts.limiter ? flag_limited : 0));
  if (opts.limiter) limiter_of(j) = opts.limiter->state();
  j->size_class = static_cast<std::uint8_t>(block_class(size));
  j->refs.store(2, std::memory_order_relaxed);  // the future and the runtime
  try {
    ::new (static_cast<void*>(slot<Call>(j))) Call{std::forward<F>(f), {std::forward<Args>(args)...}};
  } catch (...) {
    free_block(raw, size);
    throw;
  }
  // std::stop_source's default constructor allocates, so only jobs that take a token pay for it.
  if constexpr (stop) {
    try {
      ::new (static_cast<void*>(stop_source_of(j))) std::stop_source();
    } catch (...) {
      slot<Call>(j)->~Call();
      free_block(raw, size);
      throw;
    }
  }
  submit(c, j);
  return j;
}

// The future's half of cancel(): see cancel.hpp.
UVRT_EXTERN cancel_result cancel(job_core* j, cancel_mode mode);

// Throws usage_error unless the calling thread runs `c`'s loop. `what` names the call.
UVRT_EXTERN void check_loop_thread(const core* c, const char* what);

}  // namespace uvrt::detail
