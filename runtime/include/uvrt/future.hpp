/// @file
/// The future of uvrt's operations, uvrt::future.
///
/// @class uvrt::future
/// uvrt::future<T>: the result of one to_thread call, delivered on the loop thread.
///
/// @par Thread-safety
/// Distinct objects: safe. Shared objects: unsafe. valid(), ready() and, once
/// ready() is true, get() may be called from any thread; cancel(), then() and co_await on a
/// future that has not settled must be called on the thread that runs its runtime's loop, by
/// that runtime (usage_error otherwise). A settled future is plain data: co_await, then() and
/// runtime::block_on hand over its outcome at once, whatever the thread or runtime, because the
/// runtime that settled it may already be gone. A future may outlive its runtime: the runtime's
/// teardown settles it.
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "cancel.hpp"
#include "detail/job.hpp"
#include "detail/spawn_ctx.hpp"
#include "errors.hpp"

namespace uvrt {

class runtime;
template <class T>
class future;

namespace detail {

// Throws usage_error unless a continuation may wait on the pending job `j` from this thread.
UVRT_EXTERN void check_parkable(const job_core* j, const char* what);
// Checks as above, then records `c` as the job's one continuation.
UVRT_EXTERN void park(job_core* j, continuation* c, const char* what);
// Forgets a continuation whose coroutine frame is being destroyed before `j` settled.
UVRT_EXTERN void unpark(job_core* j, continuation* c) noexcept;
// Keeps an exception thrown by a continuation or a posted callable for run()/block_on().
UVRT_EXTERN void report_unhandled(core* c, std::exception_ptr e) noexcept;
[[noreturn]] UVRT_EXTERN void throw_no_state(const char* what);
[[noreturn]] UVRT_EXTERN void throw_not_ready(const char* what);

template <class T>
future<T> adopt_future(job_core* j) noexcept;

// The job behind a future, for the loop operations that watch futures (op.hpp).
struct future_access {
  template <class T>
  static job_core* job(const future<T>& f) noexcept {
    return f.job_;
  }
  template <class T>
  static job_core* take(future<T>& f) noexcept {
    return std::exchange(f.job_, nullptr);
  }
};

// A coroutine whose promise can say which spawned task's chain it belongs to (task.hpp).
template <class P>
concept in_spawn_chain = requires(P& p) {
  { p.spawn_context() } -> std::same_as<spawn_ctx*>;
};

template <class T, class F>
struct then_holder : continuation {
  F fn;
  future<T> fut;

  then_holder(F&& f, future<T>&& fu) : continuation{&run, nullptr}, fn(std::move(f)), fut(std::move(fu)) {}

  static void run(continuation* self) noexcept {
    std::unique_ptr<then_holder> h(static_cast<then_holder*>(self));
    core* c = core_of(h->fut.job_);
    try {
      std::invoke(std::move(h->fn), std::move(h->fut));
    } catch (...) {
      report_unhandled(c, std::current_exception());
    }
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] future {
  static_assert(!std::is_reference_v<T>, "uvrt::future<T>: T must not be a reference");
  static_assert(std::is_void_v<T> || std::is_move_constructible_v<T>,
                "uvrt::future<T>: T must be move-constructible");
  static_assert(std::is_void_v<T> || std::is_nothrow_destructible_v<T>,
                "uvrt::future<T>: T's destructor must not throw");
  static_assert(detail::fits_block<T>,
                "uvrt::future<T>: over-aligned results are not supported");

 public:
  using value_type = T;  ///< The type of the result (void: none).

  /// An empty future, with no state: only valid(), assignment and destruction are allowed.
  future() noexcept = default;
  /// Takes over `other`'s state (a coroutine awaiting `other` now reads from this future);
  /// `other` is left empty.
  future(future&& other) noexcept : job_(std::exchange(other.job_, nullptr)) { follow(&other); }
  /// Drops this future's state as the destructor does, then takes over `other`'s.
  future& operator=(future&& other) noexcept {
    if (this != &other) {
      reset();
      job_ = std::exchange(other.job_, nullptr);
      follow(&other);
    }
    return *this;
  }
  future(const future&) = delete;             ///< Not copyable: one owner per outcome.
  future& operator=(const future&) = delete;  ///< Not copyable: one owner per outcome.

  /// Dropping a future that has not settled detaches it: the job still runs to completion and
  /// its outcome is destroyed. It does not cancel. A coroutine awaiting it still gets its outcome.
  ~future() { reset(); }

  /// False for a default-constructed or moved-from future, and after get().
  bool valid() const noexcept { return job_ != nullptr; }

  /// True once the future has settled (value, exception or cancelled).
  bool ready() const {
    if (!job_) detail::throw_no_state("uvrt::future::ready");
    return job_->state.load(std::memory_order_acquire) != detail::job_state::pending;
  }

  /// The value, or rethrows what the job threw (type intact), or throws cancelled_error.
  /// Consumes the state: afterwards valid() is false. Throws usage_error if not ready: use
  /// co_await, then() or runtime::block_on to wait.
  T get() {
    if (!ready()) detail::throw_not_ready("uvrt::future::get");
    detail::job_core* j = std::exchange(job_, nullptr);
    struct drop {
      detail::job_core* j;
      ~drop() { detail::release<T>(j); }
    } guard{j};
    switch (j->state.load(std::memory_order_acquire)) {
      case detail::job_state::error:
        std::rethrow_exception(*detail::slot<std::exception_ptr>(j));
      case detail::job_state::cancelled:
        throw cancelled_error();
      default:
        break;
    }
    if constexpr (!std::is_void_v<T>) return std::move(*detail::slot<T>(j));
  }

  /// Asks the job to not run, or to stop; see cancel.hpp for the modes and results. Never runs
  /// a continuation synchronously: a waiting coroutine or then() callback resumes from the loop.
  /// On a settled future it does nothing and returns already_settled.
  cancel_result cancel(cancel_mode mode = cancel_mode::wait) {
    if (!job_) detail::throw_no_state("uvrt::future::cancel");
    if (ready()) return cancel_result::already_settled;
    return detail::cancel(job_, mode);
  }

  /// Runs `f(future<T>)` on the loop thread once this future settles, passing the settled future
  /// (call get() on it). If it has settled already, runs `f` now, on the calling thread.
  /// An exception escaping `f` when run by the loop is rethrown by the runtime::run or block_on
  /// call that is driving the loop (or the next one, if the application drives the loop itself).
  template <class F>
  void then(F&& f) && {
    static_assert(std::is_invocable_v<std::decay_t<F>, future<T>>,
                  "uvrt::future::then: the callback must accept a uvrt::future<T>");
    // It is destroyed on the loop thread inside libuv's callbacks, where a throwing destructor
    // could only end in std::terminate.
    static_assert(std::is_nothrow_destructible_v<std::decay_t<F>>,
                  "uvrt::future::then: the callback must be nothrow destructible");
    if (!job_) detail::throw_no_state("uvrt::future::then");
    if (ready()) {
      std::invoke(std::forward<F>(f), std::move(*this));
      return;
    }
    // Checked before the holder takes the future, so a refused then() leaves it untouched.
    detail::check_parkable(job_, "uvrt::future::then");
    detail::job_core* j = job_;
    j->cont = new detail::then_holder<T, std::decay_t<F>>(std::decay_t<F>(std::forward<F>(f)), std::move(*this));
  }

  /// What `co_await` on a future uses; not meant to be named.
  ///
  /// Reads the outcome from the awaited future object wherever it has moved meanwhile, or, if it
  /// was dropped while awaited, from the reference the future handed over (see continuation).
  ///
  /// @par Thread-safety
  /// As for future: the loop thread of the future's runtime.
  class awaiter : detail::continuation {
   public:
    /// Awaits `f`.
    explicit awaiter(future& f) noexcept : continuation{&wake, &f} {}
    awaiter(const awaiter&) = delete;             ///< Not copyable.
    awaiter& operator=(const awaiter&) = delete;  ///< Not copyable.
    /// Forgets the wait if the awaiting coroutine is destroyed before the future settled.
    ~awaiter() {
      if (parked_) {  // the frame is destroyed before the job settled
        detail::unpark(job_, this);
        if (ctx_ && ctx_->awaiting == job_) ctx_->awaiting = nullptr;
      }
      if (!reader && job_) detail::release<T>(job_);
    }
    /// True if the future has settled: no suspension.
    bool await_ready() const { return source().ready(); }
    /// Parks the coroutine until the future settles (usage_error off its runtime's loop thread).
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      waiter_ = h;
      detail::park(source().job_, this, "co_await uvrt::future");
      job_ = source().job_;
      parked_ = true;
      // Inside a spawned task: a cancel of the task reaches this future (runtime::spawn).
      if constexpr (detail::in_spawn_chain<P>) {
        if (detail::spawn_ctx* ctx = h.promise().spawn_context()) {
          ctx_ = ctx;
          ctx->awaiting = job_;
          if (ctx->pending) detail::deliver_cancel(ctx);
        }
      }
    }
    /// The outcome, as get() gives it; cancelled_error if a spawned task was cancelled meanwhile.
    T await_resume() {
      parked_ = false;
      if (ctx_ && ctx_->interrupted == job_) {  // the task was cancelled while it waited here
        ctx_->interrupted = nullptr;
        if (reader) source().reset();
        else detail::release<T>(std::exchange(job_, nullptr));
        throw cancelled_error();
      }
      if (reader) return source().get();
      return future(std::exchange(job_, nullptr)).get();
    }

   private:
    friend class future;
    future& source() const noexcept { return *static_cast<future*>(reader); }
    static void wake(continuation* self) noexcept {
      auto* a = static_cast<awaiter*>(self);
      a->parked_ = false;
      if (a->ctx_) a->ctx_->awaiting = nullptr;
      a->waiter_.resume();
    }
    detail::job_core* job_ = nullptr;  // set while parked; owned once `reader` is null
    detail::spawn_ctx* ctx_ = nullptr;  // the spawned task's chain this coroutine belongs to
    std::coroutine_handle<> waiter_;
    bool parked_ = false;
  };

  /// Awaiting consumes the state, as get() does.
  awaiter operator co_await() & noexcept { return awaiter(*this); }
  awaiter operator co_await() && noexcept { return awaiter(*this); }  ///< As above.

 private:
  template <class U, class F>
  friend struct detail::then_holder;
  template <class U>
  friend future<U> detail::adopt_future(detail::job_core* j) noexcept;
  friend struct detail::future_access;
  friend class runtime;

  explicit future(detail::job_core* j) noexcept : job_(j) {}

  // The parked continuation that reads from this future object, if any. Only the loop thread
  // parks or clears continuations, and only through a future it holds, so a future that is not
  // awaited can be dropped on any thread: `cont` is then only read.
  detail::continuation* reader_of_this() const noexcept {
    detail::continuation* k = job_ ? job_->cont : nullptr;
    return k && k->reader == this ? k : nullptr;
  }

  // After a move from `other`: a coroutine awaiting `other` now reads from this object.
  void follow(const future* other) noexcept {
    if (detail::continuation* k = job_ ? job_->cont : nullptr; k && k->reader == other) k->reader = this;
  }

  void reset() noexcept {
    if (!job_) return;
    if (detail::continuation* k = reader_of_this()) {
      k->reader = nullptr;  // the awaiting coroutine keeps this reference and releases it
      job_ = nullptr;
      return;
    }
    detail::release<T>(std::exchange(job_, nullptr));
  }

  detail::job_core* job_ = nullptr;
};

template <class T>
future<T> detail::adopt_future(job_core* j) noexcept {
  return future<T>(j);
}

}  // namespace uvrt
