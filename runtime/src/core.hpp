// The runtime's core: everything a runtime owns, kept out of the public headers.
//
// How jobs reach libuv. A runtime never gives libuv more than `carrier_count` jobs at a time
// (at least 1024). Each of its carriers is a uv_work_t of its own that carries one job at a
// time. A finished carrier waits for the check phase of the same turn, where all the carriers
// freed in that turn take the next jobs from the runtime's queue together: refilling them one by
// one as they finish would wake a sleeping worker for each job. So:
//   - a job waiting in the queue costs its block (56 bytes for an int result) and no uv_work_t;
//   - libuv's one process-wide queue holds at most carrier_count jobs of each runtime, so the
//     process's file system and DNS requests wait behind that many jobs, not behind a burst;
//   - libuv's own pass over finished requests (uv__work_done, which runs every finished request's
//     callback in one go) handles at most carrier_count requests, which bounds the loop's stall;
//   - a loop thread that blocks (instead of awaiting) while more than carrier_count of its jobs
//     are queued will wait for the rest to start forever: they reach libuv only as it turns.
//
// Invariants the rest of uvrt relies on:
//   - A job in flight is in exactly one place: the queue (flag_queued, linked through prev and
//     next, FIFO), a busy carrier (held_by; `busy` counts the busy carriers), or the backlog
//     (flag_arrived, linked through next, FIFO) once libuv is done with it or it was cancelled
//     from the queue. Teardown therefore finds every unsettled job. All of it is loop-thread only.
//   - A job's future is pending only while its runtime's core exists: teardown does not return
//     before every job was finished and every deferred continuation was resumed.
//   - uv_cancel is called at most once per carried job, and only before its after-work callback
//     ran (flag_cancel_queued, flag_busy and flag_arrived guard it): libuv corrupts its queue if
//     it is called after that callback. A carrier is reused only once its after-work callback ran.
//   - A job is finished (vt->finish: settled, continuation resumed, the runtime's reference
//     dropped) in slices of bounded time: at once while the current slice lasts, otherwise from
//     the backlog by `slicer` after the poll or on a later turn. A burst of completions is
//     settled a slice at a time and timers and sockets are served between turns.
//   - The runtime's handles: `wakeup` and `slicer` are unreferenced, so they never keep the loop
//     alive on their own; `wakeup` is referenced while continuations wait in `deferred`, and
//     `spinner` is active (and referenced) only while the backlog is not empty, which keeps the
//     loop turning without blocking in poll until the backlog is settled. Busy carriers keep the
//     loop alive as libuv requests do.
//   - Posts are queued under `post_mutex`, and uv_async_send is called under it too, so teardown
//     can close `wakeup` once it has stopped accepting posts without racing a late sender.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "uvrt/runtime.hpp"

namespace uvrt::detail {

// A uv_work_t of the runtime's that carries one job at a time to libuv (see above).
struct carrier {
  uv_work_t req;  // first member: libuv hands back &req; req.data is the owning core
  job_core* job;  // the job it carries, or null while idle
  carrier* next_idle;
};

class core {
 public:
  core(uv_loop_t* app_loop, int pool_size);  // app_loop null: create and own a loop
  ~core();

  // The runtime's teardown, instead of delete: cancels queued jobs, asks running ones to stop,
  // waits for them (not for jobs shutdown() abandoned), closes the handles and frees the core.
  // From inside the loop it only starts that, and the loop's later turns end it.
  static void close(core* c) noexcept;
  shutdown_result shutdown(std::chrono::nanoseconds timeout);
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  uv_loop_t* loop;
  const bool owns_loop;
  const std::thread::id owner = std::this_thread::get_id();

  bool closing = false;
  bool detached = false;   // the runtime is destroyed; the core ends its teardown itself
  bool finishing = false;  // detached, settled, and closing its handles
  bool ending = false;     // end_here is turning the loop to finish the teardown
  std::size_t stragglers = 0;  // jobs shutdown() abandoned that libuv has not handed back
  bool driving = false;  // inside run() or block_on()
  int depth = 0;         // > 0 while this thread is inside the loop on this runtime's behalf

  std::vector<job_core*> deferred;  // abandoned jobs whose continuations wait to be resumed
  std::exception_ptr unhandled;

  std::mutex post_mutex;
  posted* post_head = nullptr;
  posted* post_tail = nullptr;
  bool accepting_posts = true;

  uv_async_t wakeup;
  uv_check_t slicer;   // after each poll: ends the slice, then settles a slice of the backlog
  uv_idle_t spinner;   // while the backlog is not empty: poll without blocking
  uv_timer_t deadline;  // wakes shutdown's wait at its timeout
  int open_handles = 0;

  void submit(job_core* j) noexcept;
  // Cancels a job that has not run yet: from the queue at once, from libuv with uv_cancel. False
  // if it is running or has run. Either way it settles later, never inside this call.
  bool cancel_if_queued(job_core* j) noexcept;
  void on_carrier_done(carrier* k, int status) noexcept;
  void drain_posted() noexcept;
  void drain_deferred() noexcept;
  void make_room_to_defer();  // may throw; call before changing anything
  void defer(job_core* j) noexcept;
  void settle_slice() noexcept;
  bool quiet() const noexcept;  // nothing left to settle but jobs shutdown() abandoned
  void finish_if_detached() noexcept;
  void end_here() noexcept;  // on a thread that may turn the loop: ends a detached core's teardown
  std::exception_ptr take_unhandled() noexcept { return std::exchange(unhandled, nullptr); }

 private:
  // Enough that the pool rarely runs dry while the loop settles a turn's completions (workers
  // that run dry sleep, and waking them costs more than an empty job), and several times the
  // pool so that large pools stay busy too. A carrier is 144 bytes; they are handed out lazily.
  static int carriers_for(int pool_size) noexcept { return pool_size * 4 > 1024 ? pool_size * 4 : 1024; }

  const int carrier_count;
  std::unique_ptr<carrier[]> carriers;  // the first `carriers_used` have been handed out
  int carriers_used = 0;
  int busy = 0;
  carrier* idle = nullptr;

  job_core* queue_head = nullptr;
  job_core* queue_tail = nullptr;

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

  uv_loop_t own_loop_;

  carrier* take_carrier() noexcept;
  void carry(carrier* k, job_core* j) noexcept;
  void refill() noexcept;
  void dequeue(job_core* j) noexcept;
  void arrive(job_core* j, bool may_settle_now) noexcept;
  bool slice_has_room() noexcept;
  struct cancel_counts {
    std::size_t cancelled = 0;  // jobs that will never run
    std::size_t running = 0;    // jobs asked to stop
  };
  cancel_counts cancel_all() noexcept;
  void init_handles();
  void close_handles(uv_close_cb closed) noexcept;
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
