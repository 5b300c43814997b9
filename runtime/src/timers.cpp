// Timers: the heap of deadlines behind one libuv timer. See timers.hpp for the design.
#include "timers.hpp"

#include <cassert>
#include <chrono>
#include <ratio>
#include <type_traits>

#include "core.hpp"

namespace uvrt::detail {

// steady_clock's count: CLOCK_MONOTONIC in nanoseconds, the clock of uv_hrtime() and of the loop's
// milliseconds, so that sleep_until(t) is exactly t and equal time points fire in arming order.
static_assert(std::is_same_v<std::chrono::steady_clock::period, std::nano>, "steady_clock counts nanoseconds");
std::uint64_t clock_now() noexcept {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

void reserve_timer(core* c) { c->timers_.reserve(); }

void arm(core* c, timer_entry* e, std::uint64_t deadline) noexcept { c->timers_.add(e, deadline); }

void disarm(core* c, timer_entry* e) noexcept { c->timers_.remove(e); }

void timers::add(timer_entry* e, std::uint64_t deadline) noexcept {
  assert(e->index == timer_entry::not_armed && !torn_down_ && heap_.size() < heap_.capacity());
  heap_.push_back(e);  // within the capacity reserve() made: does not allocate
  e->deadline = deadline;
  e->seq = next_seq_++;
  e->index = heap_.size() - 1;
  sift_up(e->index);
  if (e->index == 0 && !firing_) rearm();
}

void timers::remove(timer_entry* e) noexcept {
  const std::size_t i = e->index;
  if (i == timer_entry::not_armed) return;
  assert(i < heap_.size() && heap_[i] == e);
  e->index = timer_entry::not_armed;
  timer_entry* last = heap_.back();
  heap_.pop_back();
  if (last != e) {
    place(last, i);
    sift_up(i);
    sift_down(last->index);
  }
  if (!firing_) rearm();
}

void timers::sift_up(std::size_t i) noexcept {
  timer_entry* e = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!before(e, heap_[parent])) break;
    place(heap_[parent], i);
    i = parent;
  }
  place(e, i);
}

void timers::sift_down(std::size_t i) noexcept {
  timer_entry* e = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], e)) break;
    place(heap_[child], i);
    i = child;
  }
  place(e, i);
}

timer_entry* timers::pop() noexcept {
  timer_entry* top = heap_.front();
  remove(top);
  return top;
}

// Arms `clock` for the earliest deadline, counted in libuv's milliseconds from the loop's cached
// clock, rounded up so that it never fires before the deadline unless that clock lags.
void timers::rearm() noexcept {
  if (heap_.empty()) {
    uv_timer_stop(&clock);
    return;
  }
  const std::uint64_t deadline = heap_.front()->deadline;
  const std::uint64_t due_ms = deadline / 1'000'000 + (deadline % 1'000'000 != 0);  // no overflow near 2^64
  const std::uint64_t now_ms = uv_now(clock.loop);
  std::uint64_t wait_ms = due_ms > now_ms ? due_ms - now_ms : 0;
  if (torn_down_) wait_ms = 0;  // teardown: everything fires now
  if (firing_ && wait_ms == 0) wait_ms = 1;  // libuv 1.44 would run it again in this pass
  uv_timer_start(&clock, &on_clock, wait_ms, 0);
}

void timers::tear_down() noexcept {
  torn_down_ = true;
  if (!heap_.empty()) uv_timer_start(&clock, &on_clock, 0, 0);
}

void timers::on_clock(uv_timer_t* h) {
  core& c = *static_cast<core*>(h->data);
  if (c.inherited()) return;  // the application turns an inherited loop in a forked child
  timers& t = c.timers_;
  t.firing_ = true;
  const std::uint64_t now = clock_now();
  const std::uint64_t armed_before = t.next_seq_;
  // An entry armed by a fire in this pass (seq >= armed_before) waits for the next callback. A fire
  // may begin the teardown (torn_down_ is read each time) or fork (the child stops here).
  while (!t.heap_.empty() && !c.inherited() && (t.torn_down_ || t.heap_.front()->seq < armed_before) &&
         (t.torn_down_ || t.heap_.front()->deadline <= now)) {
    timer_entry* e = t.pop();
    e->fire(e, t.torn_down_);
  }
  if (c.inherited()) return;
  t.rearm();  // still firing_: at least 1 ms
  t.firing_ = false;
  c.progress();
}

void timers::check_invariants() const noexcept {
#ifndef NDEBUG
  for (std::size_t i = 0; i < heap_.size(); ++i) {
    assert(heap_[i]->index == i);
    assert(i == 0 || !before(heap_[i], heap_[(i - 1) / 2]));
  }
  assert(heap_.empty() == !uv_is_active(reinterpret_cast<const uv_handle_t*>(&clock)) || firing_);
#endif
}

}  // namespace uvrt::detail
