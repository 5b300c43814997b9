// Settlement: slices and the backlog. See settle.hpp for the design and invariants.
#include "settle.hpp"

#include <cassert>

#include "core.hpp"

namespace uvrt::detail {

void settlement::finish(job_core* j) noexcept {
  core_.count_out();
  j->vt->finish(j);
}

void settlement::wait(job_core* j) noexcept {
  j->next = nullptr;
  ++waiting_;
  if (backlog_tail_) {
    backlog_tail_->next = j;
  } else {
    backlog_head_ = j;
    uv_idle_start(&spinner, [](uv_idle_t*) {});
    if (slice_ == slice::idle) {
      uv_check_start(&slicer, &on_check);
      slice_ = slice::closed;
    }
  }
  backlog_tail_ = j;
}

void settlement::hold_turns(bool on) noexcept {
  held_ = on;
  if (on) {
    if (slice_ == slice::idle) {
      uv_check_start(&slicer, &on_check);
      slice_ = slice::closed;
    }
    uv_idle_start(&spinner, [](uv_idle_t*) {});
  } else if (!backlog_head_) {
    uv_idle_stop(&spinner);
  }
}

void settlement::open_slice() noexcept {
  // slicer ends the slice after the poll.
  if (slice_ == slice::idle) uv_check_start(&slicer, &on_check);
  slice_ = slice::open;
  slice_settled_ = 0;
  slice_deadline_ = uv_hrtime() + slice_ns;
}

bool settlement::slice_expires() noexcept {
  if (uv_hrtime() < slice_deadline_) return false;
  slice_ = slice::expired;
  return true;
}

void settlement::on_check(uv_check_t* h) {
  core& c = *static_cast<core*>(h->data);
  if (c.inherited()) return;  // the application turns an inherited loop in a forked child
  settlement& s = c.settle_;
  c.dispatch_.poll_returns();
  if (c.inherited()) return;  // a callback forked: the child touches nothing more of the parent's
  if (s.slice_ == slice::closed && !s.backlog_head_ && !s.held_) {
    // A turn without arrivals: nothing to settle until jobs arrive again.
    uv_check_stop(&s.slicer);
    s.slice_ = slice::idle;
    return;
  }
  s.slice_ = slice::closed;
  // A continuation may fork: the child settles nothing more of the parent's (lifecycle.hpp).
  while (s.backlog_head_ && s.slice_has_room() && !c.inherited()) {
    job_core* j = s.backlog_head_;
    s.backlog_head_ = j->next;
    if (!s.backlog_head_) s.backlog_tail_ = nullptr;
    --s.waiting_;
    s.finish(j);
  }
  s.slice_ = slice::closed;
  if (!s.backlog_head_ && !s.held_) uv_idle_stop(&s.spinner);
  c.check_invariants();
  c.progress();
}

void settlement::check_invariants() const noexcept {
#ifndef NDEBUG
  // The head of the backlog only: walking all of it after every slice would make a burst of a
  // million jobs quadratic in debug builds.
  std::size_t n = 0;
  for (job_core* j = backlog_head_; j && n < 64; j = j->next, ++n) assert(place_of(j) == job_place::arrived);
  assert((backlog_head_ == nullptr) == (waiting_ == 0) && "the backlog's count matches its list");
  assert((slice_ != slice::idle) == (uv_is_active(reinterpret_cast<const uv_handle_t*>(&slicer)) != 0) &&
         "slicer runs exactly while the slice is not idle");
  assert((!backlog_head_ || uv_is_active(reinterpret_cast<const uv_handle_t*>(&spinner))) &&
         "a backlog is always being settled");
#endif
}

}  // namespace uvrt::detail
