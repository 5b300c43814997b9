// Completion: settling one future, and what a future asks of its job (cancel, park, unpark).
//
// A job's future settles exactly once, on the loop thread: by complete() when the job finishes,
// or earlier by an abandon (cancel_mode::abandon, shutdown's timeout), after which complete()
// leaves it alone. The continuation is taken before the state is published, so whoever sees the
// job settled also sees that nothing waits on it any more, and it is resumed at most once: inside
// complete() (in a callback_scope), or by the mailbox on the next turn for an abandoned job.
#include <cstdio>
#include <string>

#include "core.hpp"
#include "drive.hpp"

namespace uvrt::detail {

void complete(job_core* j) noexcept {
  if (j->flags & flag_abandoned) {  // settled by an abandon; its continuation was deferred
    --core_of(j)->settled_early_;
    return;
  }
  auto& counters = core_of(j)->counters;
  ++counters.settled;
  if (j->outcome == job_state::cancelled) ++counters.cancelled;
  resume_waiter(j, j->outcome);
}

void resume_waiter(job_core* j, job_state s) noexcept {
  continuation* k = j->cont;
  if (k) j->cont = nullptr;
  j->state.store(s, std::memory_order_release);
  if (k) {
    callback_scope scope(*core_of(j));
    k->resume(k);
  }
}

void settle_early(job_core* j) noexcept {
  if (j->cont) core_of(j)->mail_.defer(j);
  j->flags |= flag_abandoned;
  j->state.store(job_state::cancelled, std::memory_order_release);
}

cancel_result cancel(job_core* j, cancel_mode mode) {
  core* c = core_of(j);
  check_loop_thread(c, "uvrt::future::cancel");
  if (j->vt->cancel) return j->vt->cancel(j, mode);  // a loop operation's cell (op.hpp)
  // Room for a deferred continuation is made first, so running out of memory changes nothing.
  if (mode == cancel_mode::abandon && j->cont) c->mail_.make_room_to_defer(1);
  cancel_result result;
  if (c->dispatch_.cancel_if_queued(j)) {
    result = cancel_result::not_started;
  } else {
    if (j->vt->request_stop && place_of(j) != job_place::arrived) j->vt->request_stop(j);
    result = mode == cancel_mode::abandon ? cancel_result::abandoned : cancel_result::stop_requested;
  }
  if (mode == cancel_mode::abandon) c->abandon(j);
  return result;
}

void park(job_core* j, continuation* k, const char* what) {
  check_parkable(j, what);
  j->cont = k;
}

void unpark(job_core* j, continuation* k) noexcept {
  if (j && j->cont == k) j->cont = nullptr;
}

// An exception nobody will ever rethrow is still not lost silently: it goes to stderr, as
// asyncio logs an exception that was never retrieved.
void report_lost(const std::exception_ptr& e, const char* why) noexcept {
  const char* what = "an exception not derived from std::exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  std::fprintf(stderr, "uvrt: an exception escaped a continuation or posted callable and %s: %s\n", why, what);
}

void report_unhandled(core* c, std::exception_ptr e) noexcept {
  if (!c->unhandled) c->unhandled = std::move(e);
  else report_lost(e, "was dropped, because an earlier one is still waiting to be rethrown");
  // run() turns in UV_RUN_DEFAULT mode: stop it so that it rethrows now.
  if (driven_here(c)) uv_stop(c->loop);
}

bool post(core* c, posted* p) {
  check_not_inherited(c, "uvrt::runtime::post");
  return c->mail_.post(p);
}

}  // namespace uvrt::detail
