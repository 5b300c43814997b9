// The runtime's core: everything a runtime owns, kept out of the public headers.
//
// Invariants the rest of uvrt relies on:
//   - Every job in flight (submitted, after-work callback not yet run) is on `jobs`, so teardown
//     can cancel or wait for it; `in_flight` counts them. Both are touched on the loop thread only.
//   - A job's future is pending only while its runtime's core exists: teardown does not return
//     before every job's after-work callback ran and every deferred continuation was resumed.
//   - uv_cancel is called at most once per job, and only before its after-work callback ran
//     (flag_cancel_queued, flag_busy and the settled state guard it): libuv corrupts its queue
//     if it is called after that callback.
//   - A job leaves `jobs` when libuv's after-work callback runs (flag_arrived: never uv_cancel it
//     again) and settles then, or, once the current slice's time is used up, waits in the backlog
//     (linked through `next`, FIFO) until `slicer` settles it after the poll or on a later turn.
//     So a burst of completions is settled a slice at a time and timers and sockets are served
//     between turns; libuv itself would run every finished job's callback in one go.
//   - The runtime's handles: `wakeup` and `slicer` are unreferenced, so they never keep the loop
//     alive on their own; `wakeup` is referenced while continuations wait in `deferred`, and
//     `spinner` is active (and referenced) only while the backlog is not empty, which keeps the
//     loop turning without blocking in poll until the backlog is settled.
//   - Posts are queued under `post_mutex`, and uv_async_send is called under it too, so teardown
//     can close `wakeup` once it has stopped accepting posts without racing a late sender.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "uvrt/runtime.hpp"

namespace uvrt::detail {

class core {
 public:
  core(uv_loop_t* app_loop);  // null: create and own a loop
  ~core();                    // the runtime's teardown
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  uv_loop_t* loop;
  const bool owns_loop;
  const std::thread::id owner = std::this_thread::get_id();

  job_core* jobs = nullptr;
  std::size_t in_flight = 0;
  bool closing = false;
  bool driving = false;  // inside run() or block_on()
  int depth = 0;         // > 0 while this thread is inside the loop on this runtime's behalf

  std::vector<std::pair<job_core*, void (*)(job_core*) noexcept>> deferred;
  std::exception_ptr unhandled;

  std::mutex post_mutex;
  posted* post_head = nullptr;
  posted* post_tail = nullptr;
  bool accepting_posts = true;

  uv_async_t wakeup;
  uv_check_t slicer;   // after each poll: ends the slice, then settles a slice of the backlog
  uv_idle_t spinner;   // while the backlog is not empty: poll without blocking
  int open_handles = 0;

  // A slice settles jobs for at most slice_ns (the clock is read every 16 jobs): short enough
  // for the loop's timers to keep sub-millisecond lag, long enough that the per-turn cost of
  // libuv's loop is spread over many jobs. A turn has at most two slices: jobs settled as they
  // arrive in the poll phase, and the backlog settled by `slicer` after it.
  static constexpr std::uint64_t slice_ns = 200'000;
  std::uint64_t slice_deadline = 0;
  unsigned slice_settled = 0;
  bool slice_open = false;     // a slice began since `slicer` last ran
  bool slice_expired = false;
  bool slicing = false;        // `slicer` is active
  job_core* backlog_head = nullptr;
  job_core* backlog_tail = nullptr;

  void link(job_core* j) noexcept;
  void unlink(job_core* j) noexcept;
  void drain_posted() noexcept;
  void drain_deferred() noexcept;
  void make_room_to_defer();  // may throw; call before changing anything
  void defer(job_core* j, void (*release_fn)(job_core*) noexcept) noexcept;
  bool arrive(job_core* j) noexcept;
  bool slice_has_room() noexcept;
  void settle_slice() noexcept;
  std::exception_ptr take_unhandled() noexcept { return std::exchange(unhandled, nullptr); }

 private:
  uv_loop_t own_loop_;
  void cancel_all() noexcept;
  void init_handles();
  void close_handles() noexcept;
  void close_own_loop() noexcept;
};

// Marks the calling thread as inside the loop on behalf of `c`: the free to_thread finds `c`,
// and block_on/run/the destructor refuse to re-enter the loop.
class loop_scope {
 public:
  explicit loop_scope(core* c) noexcept;
  ~loop_scope();
  loop_scope(const loop_scope&) = delete;
  loop_scope& operator=(const loop_scope&) = delete;

 private:
  core* c_;
  core* previous_;
};

[[noreturn]] void fatal(const char* message) noexcept;

}  // namespace uvrt::detail
