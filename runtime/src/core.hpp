// The runtime's core: everything a runtime owns, kept out of the public headers. This file is the
// composition root; each concern lives in a unit of its own, in the order a job meets them:
//
//   tokens.*      limiters: jobs waiting for a token, and tokens handed on between runtimes
//   dispatch.*    the runtime's queue and its carriers: how a job reaches a pool thread and back
//   pool_slots.*  the process-wide count of pool threads uvrt's carriers may hold
//   settle.*      slices and the backlog: when a job that came back settles its future
//   completion.cpp  settling one future: continuations, cancel(), park/unpark
//   mailbox.*     posts from other threads and continuations deferred by an abandon
//   drive.*       the one place uvrt turns a loop, and the per-loop re-entrancy guard
//   lifecycle.*   the phase (open ... closed), shutdown, teardown, and who frees the core
//   ops.cpp, timers.*, time.cpp, spawned.cpp  loop operations: futures no pool thread settles
//                 (sleeps, timeouts, when_all/when_any, spawned tasks)
//
// ARCHITECTURE.md draws the path and lists which thread touches what. The core itself holds the
// loop (its own or the application's), the units, the handles they own, and the phase.
//
// Invariants (asserted in debug builds by check_invariants and at each transition):
//   - A job the runtime has taken and not yet finished is in exactly one place (job_place): a
//     limiter's line, dispatch (queued, running or returned), or the backlog; in debug builds
//     `jobs_` counts them and must equal the sum of the three.
//   - Every job is finished (its future settled, its continuation resumed or deferred) exactly
//     once, on the loop thread.
//   - A job's future is pending only while its core exists: the core is freed only once no job
//     is in flight except those shutdown() abandoned, whose futures have settled already.
//   - uvrt's six handles (mailbox's wakeup, dispatch's wake, settlement's slicer and spinner,
//     the timers' clock, the shutdown timer) are open from construction until the phase `closing` ends, and never
//     after: from then on nothing of uvrt's is on the loop but carriers coming back (some with
//     abandoned jobs).
#pragma once

#include <uv.h>

#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <thread>
#include <utility>

#include "dispatch.hpp"
#include "drive.hpp"
#include "lifecycle.hpp"
#include "mailbox.hpp"
#include "settle.hpp"
#include "timers.hpp"
#include "tokens.hpp"
#include "uvrt/runtime.hpp"

namespace uvrt::detail {

class turn_scope;
class task_op;

class core {
 public:
  // app_loop null: create and own a loop. `slots`: pool_slots(), the most carriers it may have out.
  core(uv_loop_t* app_loop, int slots, std::size_t max_queued);
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  // --- identity (any unit may read) ---
  uv_loop_t* const loop;
  const bool owns_loop;
  const std::thread::id owner = std::this_thread::get_id();
  const std::size_t max_queued;  // options::max_queued: 0 for no bound

  // True in a child process forked after this core was made: the loop and its jobs are the
  // parent's, so nothing here may turn, close or drain it (they share the epoll instance and the
  // loop's eventfds). One load: the fork handler marks the cores in the child.
  bool inherited() const noexcept { return inherited_; }
  // True in a child process forked after any core existed.
  static bool in_forked_child() noexcept;

  // The live core one of whose handles `h` is, or null: an own loop being closed must leave the
  // handles of other runtimes embedded in it to their own teardowns.
  static core* owner_of(const uv_handle_t* h) noexcept;

  // --- the units, in the order a job meets them ---
  token_waits tokens_;
  dispatch dispatch_;
  settlement settle_;
  mailbox mail_;
  // Loop operations (uvrt/detail/op.hpp): their deadlines, and the spawned tasks (spawned.cpp).
  timers timers_;
  task_op* tasks_head = nullptr;
  void interrupt_tasks() noexcept;
  void reap_stuck_tasks() noexcept;

  // --- lifecycle (lifecycle.cpp) ---
  phase stage() const noexcept { return phase_; }
  bool takes_work() const noexcept { return phase_ == phase::open; }
  // The runtime's destructor: begins the teardown, and ends it here unless this thread is inside
  // the loop (then whoever turns it ends it). See lifecycle.hpp.
  static void close(core* c) noexcept;
  // For a frame that held the core (drive, shutdown) as it unwinds: if the runtime was destroyed
  // meanwhile, its teardown ends here.
  static void end_if_detached(core* c) noexcept;
  shutdown_result shutdown(std::chrono::nanoseconds timeout);
  // Settles an abandoned job's future now: its continuation is deferred to the mailbox, its late
  // outcome dropped when it arrives. make_room_to_defer must have been called.
  void abandon(job_core* j) noexcept;
  // Called after anything that may let the teardown move on (a job finished, a slice, deferred
  // continuations resumed). A comparison while the runtime is alive.
  void progress() noexcept {
    if (phase_ == phase::detached) progress_detached();
  }
  // A job a carrier returned (dispatch's take_returns): its token to the next job of its
  // limiter, then to the settlement, or, for a job shutdown() abandoned, finished at once.
  // Inline: it is on every job's path. Not `settle_now`: to the backlog, whatever the slice.
  void job_back(job_core* j, bool settle_now = true) noexcept {
    if (j->flags & flag_limited) [[unlikely]] give_token_back(*this, j);
    if (j->flags & flag_straggler) [[unlikely]] {
      straggler_back(j);
      return;
    }
    assert(phase_ < phase::closing && "once settled, only abandoned jobs come back");
    if (phase_ == phase::detached) [[unlikely]] check_handles_open();
    move_job(j, job_place::dispatched, job_place::arrived);
    settle_.arrive(j, settle_now);
    progress();
  }
  // A job cancelled before it ran (in the queue, or waiting for a token), taken out of `from` by
  // the caller: to the backlog, where it settles as cancelled on a later turn.
  void never_ran(job_core* j, job_place from) noexcept {
    j->flags |= flag_never_ran;
    j->outcome = job_state::cancelled;
    move_job(j, from, job_place::arrived);
    settle_.arrive(j, false);
  }
  // A carrier is back (its after-work callback, after its returns were taken): carriers go out
  // again while the runtime is open; in teardown, the last one may end it.
  void carrier_back() noexcept;
  std::size_t limited_jobs() const noexcept { return tokens_.count(); }
  // Jobs that wait to run: for a limiter's token, or in the queue (options::max_queued).
  std::size_t waiting_jobs() const noexcept { return tokens_.count() + dispatch_.queued(); }

  // Jobs abandoned (settled early) and not yet finished: runtime::stats() counts them as settled
  // only, wherever they still are.
  std::size_t settled_early_ = 0;
  // What runtime::stats() counts (loop thread).
  struct {
    std::uint64_t submitted = 0;
    std::uint64_t settled = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t abandoned = 0;
  } counters;
  // Counts a job in or out of flight (dispatch takes it, the settlement finishes it), for the
  // invariants: debug builds only, since it is on every job's path.
  void count_in() noexcept {
#ifndef NDEBUG
    ++jobs_;
#endif
  }
  void count_out() noexcept {
#ifndef NDEBUG
    --jobs_;
#endif
  }
  void check_invariants() const noexcept;
  runtime_stats stats() const;  // stats.cpp

  // --- drive (drive.cpp) ---
  std::exception_ptr unhandled;  // thrown by a continuation or posted callable, for run/block_on
  std::exception_ptr take_unhandled() noexcept { return std::exchange(unhandled, nullptr); }

 private:
  friend class turn_scope;
  ~core();

  struct census {
    std::size_t never_ran = 0;  // cancelled: will never run (now or earlier)
    std::size_t running = 0;    // held by a carrier and not cancelled: asked to stop
    std::size_t returned = 0;   // ran, and wait in the backlog to settle
  };
  census cancel_all() noexcept;
  void advance(phase to) noexcept;
  bool settled() const noexcept;  // nothing in flight but abandoned jobs, no continuation deferred
  void end_teardown() noexcept;   // on a thread outside the loop: turns it until the teardown ends
  void reap() noexcept;           // a thread of uvrt's: turns an own loop until abandoned jobs are back
  void progress_detached() noexcept;
  void handles_closed() noexcept;
  void check_handles_open() const noexcept;
  void straggler_back(job_core* j) noexcept;
  void release_unheld() noexcept;  // phase closed, no uvrt frame holds the core: free it now
  void destroy() noexcept;         // frees the core (closing an own loop first)

  static void install_fork_handler();
  void init_handles();
  void close_handles(uv_close_cb closed) noexcept;
  void close_foreign_handles() noexcept;
  void close_own_loop() noexcept;
  bool owns(const uv_handle_t* h) const noexcept;

  phase phase_ = phase::open;
  std::size_t stragglers_ = 0;  // jobs shutdown() abandoned that no carrier has returned
  std::size_t jobs_ = 0;        // jobs taken and not yet finished (debug builds)
  int open_handles_ = 0;
  bool inherited_ = false;      // set in a forked child by the fork handler (core.cpp)
  uv_timer_t deadline_;         // wakes shutdown's wait at its timeout

  uv_loop_t own_loop_;
  core* live_prev_ = nullptr;  // the process's live cores (core.cpp), for owner_of
  core* live_next_ = nullptr;
};

// completion.cpp: the two ways any future settles, a job's or a loop operation's cell.
// Publishes `s` and resumes the continuation, if any, in a callback_scope.
void resume_waiter(job_core* j, job_state s) noexcept;
// Settles `j` as cancelled now and defers its continuation to the mailbox (room made by the caller).
void settle_early(job_core* j) noexcept;

[[noreturn]] void fatal(const char* message) noexcept;
void report_lost(const std::exception_ptr& e, const char* why) noexcept;

// Throws usage_error in a forked child for a core of the parent's. `what` names the call.
[[noreturn]] void throw_inherited(const char* what);
inline void check_not_inherited(const core* c, const char* what) {
  if (c->inherited()) [[unlikely]] throw_inherited(what);
}

inline callback_scope::callback_scope(core& c) noexcept : f_{c.loop, &c, tls_top, false, false} { tls_top = &f_; }

inline callback_scope::~callback_scope() { tls_top = f_.prev; }

}  // namespace uvrt::detail
