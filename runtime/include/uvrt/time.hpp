/// @file
/// Time on the loop: sleeps, and timeouts with a grace period.
///
/// Deadlines are kept on the monotonic clock (std::chrono::steady_clock, uv_hrtime) and served by
/// one libuv timer per runtime, which counts whole milliseconds: a sleep ends at its deadline or
/// up to about a millisecond after it (more if the loop is busy), never before.
///
/// Thread-safety: as for future (future.hpp): the loop thread of the runtime.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/timer.hpp"
#include "detail/watch.hpp"
#include "errors.hpp"
#include "future.hpp"

namespace uvrt {

namespace detail {

// A sleep's cell, on `c`'s timers until `deadline` (clock_now() nanoseconds).
UVRT_EXTERN job_core* make_sleep(core* c, std::uint64_t deadline, const char* what);
// The deadline `d` from now, saturated; d < 0 is now.
UVRT_EXTERN std::uint64_t deadline_after(std::chrono::nanoseconds d) noexcept;
UVRT_EXTERN std::uint64_t deadline_at(std::chrono::steady_clock::time_point t) noexcept;
// Throws std::invalid_argument for a negative timeout or grace. `what` names the call.
UVRT_EXTERN void check_timeout(std::chrono::nanoseconds d, std::chrono::nanoseconds grace, const char* what);
[[noreturn]] UVRT_EXTERN void throw_timed_out();

// timeout's operation: watches its one input and a timer entry.
//   watching -> (d passes) cancel the input (wait); grace 0: fail now and drop it
//            -> grace:   fail when it settles, or at d + grace (then drop it)
//   watching -> (the input settles) its outcome
template <class T>
class timeout_op final : public watch_op, timer_entry {
 public:
  timeout_op(job_core* cell, job_core* input, std::uint64_t grace) : watch_op(cell, &input, 1), grace_(grace) {
    fire = &on_fire;
  }

  cancel_result cancel(cancel_mode mode) override {
    const cancel_result r = cancel_with_inputs(mode);
    disarm(owner(), this);
    return r;
  }

  // reserve_timer made room for the entry.
  void start(std::uint64_t deadline) noexcept {
    arm(owner(), this, deadline);
    watch();
  }
  // For job_options::timeout: the op is made before the job (whose submission may be refused),
  // then given the job's future reference and started.
  void start_with(job_core* job, std::uint64_t deadline) noexcept {
    hold(0, job);
    start(deadline);
  }
  // Undoes an op that was never started: the caller still holds the cell's future.
  void discard() noexcept { retire(); }

 private:
  bool settled(std::size_t) noexcept override {
    disarm(owner(), this);
    if (cancelled_) {
      settle_cancelled(cell_);
    } else if (expired_) {
      fail();
    } else {
      settle_from<T>(cell_, take(0));
    }
    retire();
    return true;
  }

  static void on_fire(timer_entry* e, bool torn_down) noexcept {
    auto* self = static_cast<timeout_op*>(e);
    if (torn_down) {
      // The runtime is being destroyed: the work is asked to stop and is left to the teardown,
      // the timeout settles as cancelled.
      self->cancel_inputs(cancel_mode::wait);
      settle_cancelled(self->cell_);
      self->retire();
      return;
    }
    if (!self->expired_) {
      self->expired_ = true;
      // Queued work never runs, running work is asked to stop.
      self->cancel_inputs(cancel_mode::wait);
      if (self->grace_ != 0) {
        // The heap has the room this entry had a moment ago.
        arm(self->owner(), self, clock_now() + self->grace_);
        return;
      }
    }
    self->fail();
    self->retire();
  }

  void fail() noexcept {
    try {
      throw_timed_out();
    } catch (...) {
      settle_error(cell_, std::current_exception());
    }
  }

  std::uint64_t grace_;
  bool expired_ = false;
};

}  // namespace detail

/// The outcome of `f` if it settles within `d`. Otherwise it fails with timeout_error: at `d`, `f`
/// is cancelled (queued work never runs, running work is asked to stop through its stop token);
/// with `grace` 0 the timeout fails at `d` at once and the work is abandoned (its late outcome is
/// destroyed); with a grace period it fails when `f` has settled, or at `d + grace`, whichever
/// comes first (then abandoned). Either way no result arrives after timeout_error. A settled `f`
/// is returned as it is. Cancelling the result cancels `f` with the same mode; it then settles as
/// cancelled (once `f` has, for cancel_mode::wait). A runtime's teardown settles a pending timeout
/// as cancelled. On the loop thread of `f`'s runtime while it takes work (usage_error,
/// runtime_closed_error); an empty `f` is usage_error, a negative `d` or `grace`
/// std::invalid_argument.
template <class T>
future<T> timeout(future<T> f, std::chrono::nanoseconds d, std::chrono::nanoseconds grace = {}) {
  detail::check_timeout(d, grace, "uvrt::timeout");
  detail::job_core* j = detail::future_access::job(f);
  detail::core* c = detail::check_inputs(&j, 1, "uvrt::timeout");
  if (f.ready()) return f;
  detail::check_open(c, "uvrt::timeout");
  detail::reserve_timer(c);
  auto* op = detail::make_op<T, detail::timeout_op<T>>(c, j, static_cast<std::uint64_t>(grace.count()));
  detail::future_access::take(f);  // its reference now belongs to the operation
  future<T> result = detail::adopt_future<T>(op->cell());
  op->start(detail::deadline_after(d));
  return result;
}

}  // namespace uvrt
