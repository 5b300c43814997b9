// Settlement: when a job that came back from libuv (or was cancelled from the queue) settles.
//
// libuv runs every finished request's callback in one go, so a burst of completions would stall
// the loop. uvrt settles them in slices of bounded time instead: a job that arrives is finished
// (vt->finish: future settled, continuation resumed, the runtime's reference dropped) at once
// while the current slice lasts and nothing waits before it; otherwise it joins the backlog,
// which `slicer` (a check handle, after each poll) settles a slice at a time. A turn has at most
// two slices: jobs settled as they arrive in the poll phase, and the backlog after it. Timers and
// sockets are served between turns.
//
// A slice settles jobs for at most slice_ns (the clock is read every 16 jobs): short enough for
// the loop's timers to keep sub-millisecond lag, long enough that the per-turn cost of libuv's
// loop is spread over many jobs.
//
// Invariants (loop thread only):
//   - The backlog holds `arrived` jobs, FIFO, linked through next; `waiting_` counts them.
//   - `slicer` is active exactly when the slice is not `idle`; a non-empty backlog means `slicer`
//     and `spinner` are both active (spinner keeps poll from blocking until the backlog is done).
//   - Both handles are unreferenced or idle when there is nothing to settle and dispatch does not
//     hold the turns: they never keep a loop alive on their own, except spinner while the backlog
//     is not empty or the turns are held (dispatch holds them only while jobs are out).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "uvrt/detail/job.hpp"

namespace uvrt::detail {

class core;

class settlement {
 public:
  explicit settlement(core& owner) noexcept : core_(owner) {}

  // A job that is now `arrived`: settled now if `may_settle_now`, the slice has room and nothing
  // waits before it; else appended to the backlog. Inline: it is on every job's path.
  void arrive(job_core* j, bool may_settle_now) noexcept {
    if (may_settle_now && !backlog_head_ && slice_has_room()) finish(j);
    else wait(j);
  }

  template <class F>
  void for_each_waiting(F&& f) const {
    for (job_core* j = backlog_head_; j; j = j->next) f(j);
  }
  std::size_t waiting() const noexcept { return waiting_; }
  // While held, every turn runs `slicer` (which lets dispatch look for returned jobs first) and
  // poll does not block: dispatch holds the turns while jobs come back often (dispatch.cpp).
  void hold_turns(bool on) noexcept;
  void check_invariants() const noexcept;

  uv_check_t slicer;  // after each poll: ends the slice, settles the backlog
  uv_idle_t spinner;  // while the backlog is not empty: poll without blocking

  static void on_check(uv_check_t* h);

 private:
  enum class slice : std::uint8_t {
    idle,     // slicer is stopped: nothing arrived in its last turn, nothing waits
    closed,   // slicer runs, no slice began since it last ran
    open,     // jobs settle until the deadline
    expired,  // the deadline passed: arrivals wait in the backlog until the next slice
  };
  static constexpr std::uint64_t slice_ns = 200'000;

  bool slice_has_room() noexcept {
    if (slice_ <= slice::closed) open_slice();
    if (slice_ == slice::expired) return false;
    return ++slice_settled_ % 16 != 0 || !slice_expires();
  }
  void open_slice() noexcept;
  bool slice_expires() noexcept;  // reads the clock: true (and the slice expired) past the deadline
  void wait(job_core* j) noexcept;
  void finish(job_core* j) noexcept;

  core& core_;
  slice slice_ = slice::idle;
  unsigned slice_settled_ = 0;
  std::uint64_t slice_deadline_ = 0;
  job_core* backlog_head_ = nullptr;
  job_core* backlog_tail_ = nullptr;
  std::size_t waiting_ = 0;
  bool held_ = false;
};

}  // namespace uvrt::detail
