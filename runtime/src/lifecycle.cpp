// Lifecycle: the phase and its transitions, shutdown, the teardown, and who frees the core. See
// lifecycle.hpp for the phase table and who turns the loop in each phase.
#include <cassert>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "core.hpp"
#include "drive.hpp"

namespace uvrt::detail {

void core::advance(phase to) noexcept {
  assert(may_advance(phase_, to) && "the phase moves only as lifecycle.hpp's table says");
  phase_ = to;
}

bool core::settled() const noexcept {
  return tokens_.count() == 0 && dispatch_.out_jobs() == stragglers_ && settle_.waiting() == 0 &&
         mail_.nothing_deferred() && timers_.empty();
}

void core::check_invariants() const noexcept {
#ifndef NDEBUG
  assert(jobs_ == tokens_.count() + dispatch_.out_jobs() + settle_.waiting() &&
         "every job in flight is in exactly one place: a limiter's line, dispatch or the backlog");
  assert(stragglers_ <= dispatch_.out_jobs() && "abandoned jobs are still out");
  assert((phase_ < phase::closing || jobs_ == stragglers_) && "after settling, only abandoned jobs are in flight");
  assert((phase_ < phase::draining || open_handles_ == 0) && "no handle of uvrt's outlives the phase closing");
  if (phase_ < phase::closing) {  // their handles are open until then
    settle_.check_invariants();
    timers_.check_invariants();
  }
#endif
}

void core::abandon(job_core* j) noexcept {
  if (j->flags & flag_abandoned) return;
  ++settled_early_;
  ++counters.settled;
  ++((j->flags & flag_never_ran) ? counters.cancelled : counters.abandoned);
  settle_early(j);
}

core::census core::cancel_all() noexcept {
  census n;
  // Loop operations first: spawned tasks are cancelled (the jobs they wait on with them) and run
  // on; sleeps and timeouts settle as cancelled on the clock's next callback.
  interrupt_tasks();
  timers_.tear_down();
  // A job whose work has returned but that waits in the backlog for its slice is told to stop as
  // well. Whether it returned just before teardown began or just after is a race its owner
  // cannot see, so the promise is made for both: every job that ran and settles during teardown
  // finds its stop requested (the C API's done callback reads it). Counted before the queue is
  // cancelled into the backlog.
  settle_.for_each_waiting([&](job_core* j) {
    if (j->flags & flag_never_ran) {
      ++n.never_ran;
      return;
    }
    ++n.returned;
    if (j->vt->request_stop) j->vt->request_stop(j);
  });
  // Then the jobs waiting for a limiter's token (a token given back would dispatch the next one)
  // and the queue; then the jobs carriers have taken are asked to stop.
  n.never_ran += cancel_token_waits(*this);
  n.never_ran += dispatch_.cancel_queue();
  dispatch_.for_each_taken(
      [&](job_core* j) {
        if (j->flags & flag_straggler) return;  // abandoned by an earlier shutdown: settled
        ++n.returned;
        if (j->vt->request_stop) j->vt->request_stop(j);
      },
      [&](job_core* j) {
        ++n.running;
        if (j->vt->request_stop) j->vt->request_stop(j);
      });
  check_invariants();
  return n;
}

shutdown_result core::shutdown(std::chrono::nanoseconds timeout) {
  check_loop_thread(this, "uvrt::runtime::shutdown");
  if (inside_loop(loop))
    throw usage_error("uvrt::runtime::shutdown: called from inside the loop (a task, a continuation, a posted "
                      "callable or a callback of a runtime on the same loop); it turns the loop itself, so call "
                      "it after run or block_on has returned");
  if (timeout < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("uvrt::runtime::shutdown: the timeout is negative");
  // Room to defer every running job's continuation is made first, so that running out of memory
  // changes nothing.
  mail_.make_room_to_defer(dispatch_.out_jobs());
  if (phase_ == phase::open) advance(phase::stopped);
  shutdown_result r;
  {
    turn_scope scope(*this);
    const census n = cancel_all();
    const std::uint64_t end = uv_hrtime() + static_cast<std::uint64_t>(timeout.count());
    // One turn that does not wait, whatever the timeout: jobs that returned before this call
    // arrive now instead of being taken for still running.
    scope.turn(UV_RUN_NOWAIT);
    check_not_inherited(this, "uvrt::runtime::shutdown");
    // The timer only wakes the poll by the deadline; uv_hrtime decides, since libuv's timers count
    // whole milliseconds from the loop's cached clock. So it is re-armed from a fresh clock for
    // whatever is left on every turn.
    for (std::uint64_t now = uv_hrtime(); !settled() && now < end; now = uv_hrtime()) {
      uv_update_time(loop);
      uv_timer_start(&deadline_, [](uv_timer_t*) {}, (end - now + 999'999) / 1'000'000, 0);
      scope.turn(UV_RUN_ONCE);
      check_not_inherited(this, "uvrt::runtime::shutdown");
    }
    uv_timer_stop(&deadline_);
    // What returned by the deadline is finished, not abandoned.
    std::size_t abandoned = 0;
    dispatch_.for_each_taken([](job_core*) {}, [&](job_core* j) {
      ++abandoned;
      if (j->flags & flag_straggler) return;  // abandoned by an earlier shutdown
      // Still running at the deadline: its future settles as cancelled now (as cancel_mode::abandon
      // does) and its late outcome is dropped when it arrives.
      j->flags |= flag_straggler;
      ++stragglers_;
      abandon(j);
    });
    r.cancelled = n.never_ran;
    r.abandoned = abandoned;
    r.finished = n.running + n.returned - abandoned;
    // Settle what was cancelled or abandoned, and resume their continuations.
    while (!settled()) {
      scope.turn(UV_RUN_ONCE);
      check_not_inherited(this, "uvrt::runtime::shutdown");
    }
  }
  // A continuation may have destroyed the runtime meanwhile: then its teardown ends here.
  end_if_detached(this);
  return r;
}

void core::close(core* c) noexcept {
  // In a forked child the loop and the jobs are the parent's: leave them alone (lifecycle.hpp).
  if (c->inherited()) return;
  if (std::this_thread::get_id() != c->owner)
    fatal("uvrt::runtime destroyed on a thread other than the one that runs its loop");
  c->advance(phase::detached);
  c->cancel_all();
  if (inside_loop(c->loop)) {
    // Destroyed from inside the loop (a callback of this runtime or of another on the same loop):
    // the loop is turning below this call and cannot be turned here. The teardown goes on as it
    // turns, and whoever turns it sees it end.
    c->progress();
    return;
  }
  c->end_teardown();
}

void core::end_if_detached(core* c) noexcept {
  if (c->phase_ >= phase::detached) c->end_teardown();
}

void core::progress_detached() noexcept {
  check_handles_open();
  if (!settled()) return;
  // Nothing of uvrt's is left that could resume a spawned task still suspended (spawned.cpp). Not
  // under user code (the destructor called from a task, a continuation settling an op): that
  // code may be the task, or be using what destroying it would settle. The mailbox's callback
  // comes back here, outside its scope.
  if (tasks_head) {
    if (in_callback(loop)) {
      mail_.request_turn();
      return;
    }
    reap_stuck_tasks();
    if (!settled()) return;
  }
  // Carriers with no abandoned job come back within a slice: the runtime closes once they have, so
  // that an application's loop holds nothing of uvrt's when the destructor returns.
  if (stragglers_ == 0 && dispatch_.carriers_out() > 0) return;
  advance(phase::closing);
  mail_.close();
  dispatch_.close_wake();
  close_handles([](uv_handle_t* h) {
    auto* c = static_cast<core*>(h->data);
    if (--c->open_handles_ == 0) c->handles_closed();
  });
}

// A runtime destroyed inside the loop keeps its handles until its teardown ends on a later turn.
// An application that closes them meanwhile (uv_walk + uv_close before turning the loop on) has
// taken them from under it: starting or closing them again would corrupt libuv's lists, so that
// is a fatal usage error, reported before anything is touched.
void core::check_handles_open() const noexcept {
  const uv_handle_t* handles[] = {reinterpret_cast<const uv_handle_t*>(&mail_.wakeup),
                                  reinterpret_cast<const uv_handle_t*>(&dispatch_.wake),
                                  reinterpret_cast<const uv_handle_t*>(&settle_.slicer),
                                  reinterpret_cast<const uv_handle_t*>(&settle_.spinner),
                                  reinterpret_cast<const uv_handle_t*>(&timers_.clock),
                                  reinterpret_cast<const uv_handle_t*>(&deadline_)};
  for (const uv_handle_t* h : handles)
    if (uv_is_closing(h))
      fatal("a handle of a destroyed uvrt::runtime was closed by the application before the runtime's teardown "
            "ended; turn the loop (uv_run) until it ends before closing what is left on it");
}

void core::handles_closed() noexcept {
  advance(dispatch_.carriers_out() > 0 ? phase::draining : phase::closed);
  check_invariants();
  if (phase_ == phase::closed && !held_here(this)) release_unheld();
}

// An abandoned job comes back: its future settled long ago, so it is finished at once (its late
// outcome destroyed), in any phase, without a slice: from `closing` on the slicer is gone.
void core::straggler_back(job_core* j) noexcept {
  --stragglers_;
  move_job(j, job_place::dispatched, job_place::arrived);
  count_out();
  j->vt->finish(j);
}

void core::carrier_back() noexcept {
  if (phase_ < phase::closing) {
    dispatch_.send_carriers();
    progress();
    return;
  }
  // Teardown: the carriers' returns were taken in their after-work callbacks; the last carrier
  // back ends a draining runtime (abandoned jobs come back before their carriers do).
  if (phase_ == phase::draining && dispatch_.carriers_out() == 0) {
    assert(stragglers_ == 0);
    advance(phase::closed);
    if (!held_here(this)) release_unheld();
  }
}

void core::end_teardown() noexcept {
  {
    turn_scope scope(*this);
    progress();
    // Cancelled jobs settle from the backlog or in their carriers' after-work callbacks, running
    // ones when they return; all of that needs the loop to turn. Posts from running jobs
    // (from_thread) are served meanwhile. Jobs that shutdown() abandoned are not waited for.
    while (phase_ < phase::draining && !inherited()) scope.turn(UV_RUN_ONCE);
    if (inherited()) return;  // forked inside a callback: the loop is the parent's
    if (phase_ == phase::draining && owns_loop) {
      // The thread below turns the loop from now on: the application's handles on it are closed
      // first, so that none of its callbacks runs there (callbacks of its requests still may).
      close_foreign_handles();
      scope.turn(UV_RUN_NOWAIT);
    }
  }
  if (phase_ == phase::closed) {
    destroy();
    return;
  }
  // Draining. An application's loop gets the abandoned jobs back as it turns, and the last one
  // frees the core; an own loop is turned by a thread of uvrt's until they are back.
  if (!owns_loop) return;
  try {
    std::thread([this] { reap(); }).detach();
  } catch (...) {
    std::fprintf(stderr, "uvrt: no thread to wait for %zu abandoned jobs; the runtime's memory is left allocated\n",
                 stragglers_);
  }
}

void core::reap() noexcept {
  {
    turn_scope scope(*this);
    while (phase_ != phase::closed) scope.turn(UV_RUN_ONCE);
  }
  destroy();
}

void core::release_unheld() noexcept {
  if (owns_loop) {
    // The application turned the runtime's own loop with its own uv_run (runtime::loop()) and
    // destroyed the runtime inside it: a loop cannot be closed from inside its own uv_run.
    std::fprintf(stderr, "uvrt: a runtime destroyed inside its own loop, which the application turns with uv_run, "
                         "cannot free that loop; its memory is left allocated\n");
    return;
  }
  destroy();
}

void core::destroy() noexcept {
  assert(phase_ == phase::closed && jobs_ == 0 && "a core is freed only when nothing of it is left");
  if (unhandled) report_lost(unhandled, "was never rethrown, because the runtime was destroyed first");
  if (owns_loop) close_own_loop();
  if (inherited()) return;  // forked inside a callback while closing: the loop is the parent's
  delete this;
}

}  // namespace uvrt::detail
