// Loop operations: settling a cell, cancelling through one, and watching input futures. See
// uvrt/detail/op.hpp and uvrt/detail/watch.hpp for the design and invariants.
#include <string>

#include "core.hpp"
#include "drive.hpp"
#include "uvrt/detail/watch.hpp"

namespace uvrt::detail {

namespace {

// How many publish() calls resume continuations inside one another on this thread. A chain of
// spawned tasks, each awaiting the one before, settles link by link inside the previous link's
// final suspension; past this depth the next continuation is deferred to the mailbox, so a chain of
// any length runs in bounded stack.
thread_local unsigned publish_depth = 0;
constexpr unsigned max_publish_depth = 64;

}  // namespace

void publish(job_core* j, job_state s) noexcept {
  core* c = core_of(j);
  if (j->cont && publish_depth >= max_publish_depth) {
    try {
      c->mail_.make_room_to_defer(1);
      j->state.store(s, std::memory_order_release);
      c->mail_.defer(j);  // resumes the continuation on the next turn
      return;
    } catch (...) {
      // No room to defer: resumed here after all.
    }
  }
  ++publish_depth;
  resume_waiter(j, s);
  --publish_depth;
}

void abandon_cell(job_core* j) {
  if (j->flags & flag_abandoned) return;
  if (j->cont) core_of(j)->mail_.make_room_to_defer(1);
  settle_early(j);
}

cancel_result cancel_cell(job_core* j, cancel_mode mode) { return op_of(j)->cancel(mode); }

void settle_failure(job_core* j, std::exception_ptr e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    settle_cancelled(j);
    return;
  } catch (...) {
  }
  settle_error(j, std::move(e));
}

void make_room_to_defer(core* c, std::size_t n) { c->mail_.make_room_to_defer(n); }

void cancel_quietly(job_core* j, cancel_mode mode) noexcept {
  if (j->state.load(std::memory_order_acquire) != job_state::pending) return;
  try {
    cancel(j, mode);
    return;
  } catch (...) {
    // Only an abandon can fail (no room to defer): the work is then asked to stop instead.
  }
  try {
    cancel(j, cancel_mode::wait);
  } catch (...) {
  }
}

void check_open(core* c, const char* what) {
  check_loop_thread(c, what);
  if (!c->takes_work())
    throw runtime_closed_error(std::string(what) + ": the runtime is shutting down and takes no new work");
}

// --- watch_op ---

core* check_inputs(job_core* const* jobs, std::size_t n, const char* what) {
  core* c = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    job_core* j = jobs[i];
    if (!j) throw usage_error(std::string(what) + ": future " + std::to_string(i) + " is empty (moved from or consumed)");
    if (j->state.load(std::memory_order_acquire) != job_state::pending) continue;
    check_parkable(j, what);
    if (c && core_of(j) != c)
      throw usage_error(std::string(what) + ": the pending futures belong to different runtimes");
    c = core_of(j);
  }
  return c ? c : current_core();
}

watch_op::watch_op(job_core* cell, job_core* const* jobs, std::size_t n)
    : op(cell), inputs_(new watch_point[n]), n_(n) {
  for (std::size_t i = 0; i < n; ++i) {
    inputs_[i].resume = &on_settled;
    inputs_[i].self = this;
    inputs_[i].index = i;
    inputs_[i].job = jobs[i];
  }
}

watch_op::~watch_op() {
  for (std::size_t i = 0; i < n_; ++i) drop(i);
}

// Every pending input is parked on before any settled one is counted: counting one may cancel the
// others, and an input that settles then (a sleep, at once) must find the watch to resume later.
bool watch_op::watch() noexcept {
  for (std::size_t i = 0; i < n_; ++i) {
    job_core* j = inputs_[i].job;
    // check_inputs found each pending input free to park on.
    inputs_[i].parked = j && j->state.load(std::memory_order_acquire) == job_state::pending;
    if (inputs_[i].parked) j->cont = &inputs_[i];
  }
  for (std::size_t i = 0; i < n_; ++i)
    if (inputs_[i].job && !inputs_[i].parked && settled(i)) return true;
  return false;
}

void watch_op::on_settled(continuation* k) noexcept {
  auto* w = static_cast<watch_point*>(k);
  w->self->settled(w->index);
}

job_core* watch_op::take(std::size_t i) noexcept {
  job_core* j = std::exchange(inputs_[i].job, nullptr);
  unpark(j, &inputs_[i]);
  return j;
}

void watch_op::drop(std::size_t i) noexcept {
  if (job_core* j = take(i)) j->vt->release(j);
}

void watch_op::cancel_inputs(cancel_mode mode) noexcept {
  for (std::size_t i = 0; i < n_; ++i)
    if (job_core* j = inputs_[i].job) cancel_quietly(j, mode);
}

cancel_result watch_op::cancel_with_inputs(cancel_mode mode) {
  if (mode == cancel_mode::abandon) {
    make_room_to_defer(owner(), n_ + 1);  // the cell's continuation and each input's
    abandon_cell(cell_);
  }
  cancelled_ = true;
  cancel_inputs(mode);
  return mode == cancel_mode::abandon ? cancel_result::abandoned : cancel_result::stop_requested;
}

bool watch_op::failed(std::size_t i) const noexcept {
  const job_state s = inputs_[i].job->state.load(std::memory_order_acquire);
  return s == job_state::error || s == job_state::cancelled;
}

std::exception_ptr watch_op::failure_of(std::size_t i) const noexcept {
  job_core* j = inputs_[i].job;
  if (j->state.load(std::memory_order_acquire) == job_state::error) return *slot<std::exception_ptr>(j);
  return std::make_exception_ptr(cancelled_error());
}

}  // namespace uvrt::detail
