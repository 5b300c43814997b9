/// @file
/// uvrt::runtime, and the free functions that find the running runtime: to_thread, spawn,
/// sleep_for, sleep_until, from_thread.
///
/// @class uvrt::runtime
/// uvrt::runtime: a libuv loop plus libuv's thread pool, with to_thread on top.
///
/// A runtime either creates and owns its loop, or embeds in a uv_loop_t the application owns and
/// runs. It belongs to the thread that constructs it: that thread must be the one that runs the
/// loop, and to_thread, block_on, run and future continuations are for that thread only. Other
/// threads reach the loop through post(); jobs running on the pool reach it through from_thread().
///
/// Teardown (the destructor): new work is refused (runtime_closed_error), queued jobs are
/// cancelled (they never run) and their futures settle as cancelled, running jobs are asked to stop
/// through their stop tokens and waited for, so their futures settle with their own outcome, and
/// callables posted from other threads are run. When the destructor returns no job of this
/// runtime is running (except those shutdown() abandoned), every future it made has settled, and
/// every handle it made is closed: an application that embedded it can uv_loop_close its loop
/// and get 0. To do that the destructor turns the loop itself. Called from inside uvrt's own
/// callbacks (a task, a continuation, a posted callable), where the loop is already turning below
/// it, the destructor only begins the teardown (work refused, queued jobs cancelled, running jobs
/// asked to stop) and returns; the teardown ends as the loop turns on: before the run, block_on or
/// shutdown that turns it returns, or on the application's later turns of its own loop. The same
/// holds inside the callbacks of another runtime on the same loop: the guard against re-entering
/// a loop belongs to the loop. libuv cannot tell uvrt whether one of the application's own
/// callbacks is running while the application turns the loop with uv_run, so from those it is the
/// application's duty not to destroy the runtime (or call run, block_on or shutdown).
///
/// Jobs that shutdown() abandoned are not waited for: the destructor closes the runtime's handles
/// and returns; libuv hands the jobs back later (to a thread of uvrt's for an own loop, to the
/// application's turns of its loop otherwise). Until then libuv counts their requests, so an
/// application's uv_run(UV_RUN_DEFAULT) does not return, and process exit (which joins libuv's pool
/// threads) waits for them.
///
/// fork(): in a child process the runtime is the parent's. Every member function throws
/// usage_error there, and the destructor returns at once without touching the loop, which the
/// child shares with the parent. Create a new runtime in the child.
///
/// @par Thread-safety
/// Distinct objects: safe. Shared objects: unsafe, except post(), which any thread
/// may call while the runtime is alive (before its destructor begins).
#pragma once

#include <uv.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "errors.hpp"
#include "future.hpp"
#include "limiter.hpp"
#include "options.hpp"
#include "spawn.hpp"
#include "stats.hpp"
#include "task.hpp"
#include "time.hpp"

namespace uvrt {

/// What runtime::shutdown did with the jobs in flight when it was called; each is counted once.
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
struct shutdown_result {
  std::size_t cancelled = 0;  ///< never ran (queued, or cancelled earlier): their futures are cancelled
  std::size_t finished = 0;   ///< their work returned before the timeout (or before the call): own outcome
  std::size_t abandoned = 0;  ///< still running at the timeout: their futures are cancelled
};

namespace detail {

// A callable handed to the loop from another thread. `run` runs it on the loop thread and
// disposes of it; it must not throw.
struct posted {
  posted* next = nullptr;
  void (*run)(posted* self, core* c) noexcept;
};

// Queues `p` for the loop thread and wakes the loop. False if teardown has already finished
// serving posts: then `p` is untouched and still the caller's.
UVRT_EXTERN bool post(core* c, posted* p);

// The runtime whose loop the calling thread is driving (inside block_on, run or one of uvrt's
// callbacks), or null.
UVRT_EXTERN core* current_core() noexcept;
// The runtime whose job the calling worker thread is running, or null.
UVRT_EXTERN core* worker_core() noexcept;

// The engine behind block_on and run: on the loop thread, resumes `start` (if any), then turns
// the loop until `done(ctx)`, or until nothing is pending if `done` is null. Rethrows an
// exception a continuation or posted callable left behind. `what` names the caller in errors.
UVRT_EXTERN void drive(core* c, const char* what, std::coroutine_handle<> start, bool (*done)(void*), void* ctx);
UVRT_EXTERN void check_same_runtime(const core* c, const job_core* j, const char* what);

template <class F, class... Args>
using call_of = bound_call<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
using to_thread_result_t = std::remove_cvref_t<typename call_of<F, Args...>::result_type::type>;

template <class F>
void check_callable(const F& f, const char* what) {
  // Function pointers, std::function and friends can be empty; calling one on a worker would
  // crash or throw bad_function_call far from the caller, so refuse it here.
  bool empty = false;
  if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
    empty = f == nullptr;
  } else if constexpr (requires { f.operator bool(); }) {
    empty = !f.operator bool();
  }
  if (empty) throw std::invalid_argument(std::string(what) + ": the callable is null or empty");
}

// job_options come first in to_thread's overload that takes them; a callable never is one.
template <class F>
concept not_job_options = !std::is_same_v<std::remove_cvref_t<F>, job_options>;

template <class F, class... Args>
future<to_thread_result_t<F, Args...>> to_thread_on(core* c, const char* what, const job_options& opts, F&& f,
                                                    Args&&... args) {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...> ||
                    std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>,
                "uvrt::to_thread: f must be invocable as f(args...) or f(std::stop_token, args...) "
                "with its arguments passed as rvalues");
  using R = to_thread_result_t<F, Args...>;
  check_callable(f, what);
  if (opts.timeout != std::chrono::nanoseconds::zero() || opts.grace != std::chrono::nanoseconds::zero()) [[unlikely]] {
    check_timeout(opts.timeout, opts.grace, what);
    if (opts.timeout != std::chrono::nanoseconds::zero()) {
      // The timeout is made before the job is queued, and nothing after the job is can fail: a
      // refusal queues nothing.
      check_loop_thread(c, what);
      reserve_timer(c);
      auto* op = make_op<R, timeout_op<R>>(c, nullptr, static_cast<std::uint64_t>(opts.grace.count()));
      future<R> result = adopt_future<R>(op->cell());
      job_core* job;
      try {
        job = make_job<R>(c, opts, std::forward<F>(f), std::forward<Args>(args)...);
      } catch (...) {
        op->discard();
        throw;
      }
      op->start_with(job, deadline_after(opts.timeout));
      return result;
    }
  }
  return adopt_future<R>(make_job<R>(c, opts, std::forward<F>(f), std::forward<Args>(args)...));
}

// The runtime running on the calling thread, or no_runtime_error naming `what`.
UVRT_EXTERN core* running_core(const char* what);

template <class F>
struct posted_callable : posted {
  F fn;
  explicit posted_callable(F&& f) : posted{nullptr, &invoke}, fn(std::move(f)) {}
  static void invoke(posted* self, core* c) noexcept {
    std::unique_ptr<posted_callable> owned(static_cast<posted_callable*>(self));
    try {
      std::invoke(std::move(owned->fn));
    } catch (...) {
      report_unhandled(c, std::current_exception());
    }
  }
};

}  // namespace detail

class UVRT_EXTERN runtime {
 public:
  /// A runtime on a loop of its own, with the pool started as options{} asks.
  runtime();
  /// A runtime on a loop of its own. Throws threadpool_size_error for an invalid pool size.
  explicit runtime(options opts);
  /// A runtime embedded in `loop`, which the application owns, runs (or lets run/block_on run)
  /// and closes. The runtime never closes it. Throws std::invalid_argument for a null loop.
  explicit runtime(uv_loop_t* loop, options opts = {});
  /// The teardown the class describes: when it returns, every future the runtime made has settled
  /// (unless it is called from inside the loop, where it only begins the teardown).
  ~runtime();

  runtime(const runtime&) = delete;             ///< Not copyable.
  runtime& operator=(const runtime&) = delete;  ///< Not copyable.

  /// The runtime's loop: its own, or the one it was constructed with.
  uv_loop_t* loop() const noexcept;

  /// Runs f(args...) (or f(stop_token, args...)) on libuv's pool. f and args are decay-copied
  /// now; f is invoked once, on a worker, with its arguments as rvalues, and destroyed there.
  /// Returns a future for its result. Must be called on the loop thread (usage_error otherwise;
  /// other threads use post()); throws runtime_closed_error once teardown began and
  /// std::invalid_argument for a null callable, and queue_full_error when options::max_queued jobs
  /// wait already. When it throws, nothing was queued.
  template <detail::not_job_options F, class... Args>
  future<detail::to_thread_result_t<F, Args...>> to_thread(F&& f, Args&&... args) {
    return detail::to_thread_on(core_, "uvrt::runtime::to_thread", job_options{}, std::forward<F>(f),
                                std::forward<Args>(args)...);
  }

  /// to_thread with options for this one job: a limiter (see limiter.hpp).
  template <class F, class... Args>
  future<detail::to_thread_result_t<F, Args...>> to_thread(const job_options& opts, F&& f, Args&&... args) {
    return detail::to_thread_on(core_, "uvrt::runtime::to_thread", opts, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// Runs `t` on this runtime's loop without anyone awaiting it (asyncio's create_task): it starts
  /// now, inside this call, and runs until its first suspension; the future settles with its
  /// outcome. Cancelling the future delivers a cancellation to the task (spawn.hpp). On the loop
  /// thread (usage_error), while the runtime takes work (runtime_closed_error); an empty or
  /// started task is usage_error. Teardown cancels a pending task and lets it run to its end.
  template <class T>
  future<T> spawn(task<T> t) {
    return detail::spawn_on(core_, t, "uvrt::runtime::spawn");
  }

  /// A future that settles (void) once `d` has passed, on a libuv timer (time.hpp); a negative `d`
  /// is no time. cancel() settles it as cancelled at once (not_started). On the loop thread
  /// (usage_error), while the runtime takes work (runtime_closed_error). Teardown settles a
  /// pending sleep as cancelled.
  future<void> sleep_for(std::chrono::nanoseconds d) {
    return detail::adopt_future<void>(detail::make_sleep(core_, detail::deadline_after(d), "uvrt::runtime::sleep_for"));
  }
  /// As sleep_for, until `t` on the steady clock (a past `t` settles on the next turn).
  future<void> sleep_until(std::chrono::steady_clock::time_point t) {
    return detail::adopt_future<void>(detail::make_sleep(core_, detail::deadline_at(t), "uvrt::runtime::sleep_until"));
  }

  /// What the runtime is doing: counters, gauges and latencies (stats.hpp). On the loop thread
  /// (usage_error otherwise; other threads can post() a call). Reading them costs a pass over a
  /// few histograms, nothing on the jobs' path.
  runtime_stats stats() const;

  /// Turns the loop until `f` settles (uv_stop does not end it early), then returns its value or
  /// rethrows. For a pending future: on the loop thread only, not from inside the loop (inside a
  /// callback of any runtime on the same loop), and only for this runtime's futures (usage_error).
  /// A settled future's outcome is returned at once.
  template <class T>
  T block_on(future<T> f) {
    if (!f.valid()) throw usage_error("uvrt::runtime::block_on: the future is empty (moved from or consumed)");
    if (!f.ready()) {
      detail::check_same_runtime(core_, f.job_, "uvrt::runtime::block_on");
      detail::drive(core_, "uvrt::runtime::block_on", {}, [](void* p) { return static_cast<future<T>*>(p)->ready(); }, &f);
    }
    return f.get();
  }

  /// Starts `t` and turns the loop until it finishes, then returns its value or rethrows.
  template <class T>
  T block_on(task<T> t) {
    t.start("uvrt::runtime::block_on");
    auto h = t.h_;
    detail::drive(core_, "uvrt::runtime::block_on", h, [](void* p) { return std::coroutine_handle<>::from_address(p).done(); }, h.address());
    return h.promise().result();
  }

  /// Stops the runtime within `timeout`: new work is refused from now on (runtime_closed_error),
  /// queued jobs are cancelled, running jobs are asked to stop and waited for while the loop
  /// turns, up to `timeout`. Jobs still running then are abandoned: their futures settle as
  /// cancelled (as with cancel_mode::abandon) and their late outcomes are destroyed when they
  /// arrive. Every continuation has run when it returns, and the destructor then does not wait
  /// for the abandoned jobs (asyncio's shutdown_default_executor(timeout), tokio's
  /// shutdown_timeout). The loop turns at least once without waiting, even for a zero timeout, so
  /// jobs whose work had returned are finished with their values. Each job in flight at the call
  /// is counted once in the result. On the loop thread, not from inside the loop (usage_error); a
  /// negative timeout throws std::invalid_argument. A second call counts what is still in flight.
  shutdown_result shutdown(std::chrono::nanoseconds timeout);

  /// Turns the loop until nothing is pending or uv_stop is called: uv_run with UV_RUN_DEFAULT.
  /// Rethrows an exception that escaped a then() callback or a posted callable.
  void run();

  /// Runs `f()` on the loop thread, soon. Any thread may call it, as long as the call happens
  /// before the runtime's destructor begins (as for any object that is being destroyed). Jobs and
  /// callables that teardown still runs may post too; the callable is run at the latest by the
  /// teardown, and a post made after teardown's last round of posts throws runtime_closed_error.
  /// An exception escaping `f` is rethrown by run()/block_on().
  /// A post alone does not keep run() going: it is served whenever the loop next turns.
  template <class F>
  void post(F&& f) {
    static_assert(std::is_nothrow_destructible_v<std::decay_t<F>>,
                  "uvrt::runtime::post: the callable must be nothrow destructible");
    detail::check_callable(f, "uvrt::runtime::post");
    auto p = std::make_unique<detail::posted_callable<std::decay_t<F>>>(std::decay_t<F>(std::forward<F>(f)));
    if (!detail::post(core_, p.get())) throw runtime_closed_error("uvrt::runtime::post: the runtime has shut down");
    p.release();
  }

 private:
  detail::core* core_;
};

/// runtime::to_thread on the runtime that is running on the calling thread (inside block_on,
/// run, a task or a continuation). Throws no_runtime_error where there is none, for example on a
/// thread of its own or on a pool worker.
template <class F, class... Args>
future<detail::to_thread_result_t<F, Args...>> to_thread(const job_options& opts, F&& f, Args&&... args) {
  detail::core* c = detail::current_core();
  if (!c)
    throw no_runtime_error(
        "uvrt::to_thread: no runtime is running on this thread; call it inside runtime::block_on, "
        "runtime::run or a uvrt::task, or use runtime::to_thread");
  return detail::to_thread_on(c, "uvrt::to_thread", opts, std::forward<F>(f), std::forward<Args>(args)...);
}

/// As above, with the default job_options.
template <detail::not_job_options F, class... Args>
future<detail::to_thread_result_t<F, Args...>> to_thread(F&& f, Args&&... args) {
  return to_thread(job_options{}, std::forward<F>(f), std::forward<Args>(args)...);
}

/// runtime::spawn, sleep_for and sleep_until on the runtime running on the calling thread;
/// no_runtime_error where there is none.
template <class T>
future<T> spawn(task<T> t) {
  return detail::spawn_on(detail::running_core("uvrt::spawn"), t, "uvrt::spawn");
}
/// runtime::sleep_for on the runtime running on the calling thread; no_runtime_error where there
/// is none.
inline future<void> sleep_for(std::chrono::nanoseconds d) {
  return detail::adopt_future<void>(
      detail::make_sleep(detail::running_core("uvrt::sleep_for"), detail::deadline_after(d), "uvrt::sleep_for"));
}
/// runtime::sleep_until on the runtime running on the calling thread; no_runtime_error where
/// there is none.
inline future<void> sleep_until(std::chrono::steady_clock::time_point t) {
  return detail::adopt_future<void>(
      detail::make_sleep(detail::running_core("uvrt::sleep_until"), detail::deadline_at(t), "uvrt::sleep_until"));
}

/// From a job running on the pool: runs f(args...) on the loop thread of the job's runtime,
/// waits for it, and returns its value or rethrows its exception (anyio's from_thread.run_sync).
/// The arguments are passed by reference: the worker waits while they are used. Throws
/// usage_error on a loop thread (it would wait for itself) and no_runtime_error elsewhere.
template <class F, class... Args>
std::remove_cvref_t<std::invoke_result_t<F&, Args&...>> from_thread(F&& f, Args&&... args) {
  // The result is returned by value: a reference into loop-owned data would be read on the
  // worker while the loop goes on changing it.
  using R = std::remove_cvref_t<std::invoke_result_t<F&, Args&...>>;
  detail::core* c = detail::worker_core();
  if (!c) {
    if (detail::current_core())
      throw usage_error("uvrt::from_thread: called on a loop thread, where it would wait for itself; call the function directly");
    throw no_runtime_error("uvrt::from_thread: not called from a job running on uvrt's pool");
  }
  struct call : detail::posted {
    F& fn;
    std::tuple<Args&...> args;
    std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> value;
    std::exception_ptr error;
    std::binary_semaphore done{0};

    explicit call(F& f, Args&... a) : posted{nullptr, &invoke}, fn(f), args(a...) {}
    static void invoke(posted* self, detail::core*) noexcept {
      auto* me = static_cast<call*>(self);
      try {
        if constexpr (std::is_void_v<R>) {
          std::apply(me->fn, me->args);
          me->value.emplace();
        } else {
          me->value.emplace(std::apply(me->fn, me->args));
        }
      } catch (...) {
        me->error = std::current_exception();
      }
      me->done.release();
    }
  } request(f, args...);
  if (!detail::post(c, &request)) throw runtime_closed_error("uvrt::from_thread: the runtime has shut down");
  request.done.acquire();
  if (request.error) std::rethrow_exception(request.error);
  if constexpr (!std::is_void_v<R>) return std::move(*request.value);
}

}  // namespace uvrt
