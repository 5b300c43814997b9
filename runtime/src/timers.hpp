// Timers: every deadline of a runtime's loop operations (sleeps, timeouts, grace periods) in one
// binary min-heap, behind one libuv timer, `clock`, armed for the earliest.
//
// libuv's timers count whole milliseconds from the loop's cached clock, and libuv 1.44 runs a
// timer restarted with a 0 timeout from inside its own callback again in the same pass, without
// polling. So: an entry fires only once clock_now() has reached its deadline (a clock that fired
// early is re-armed for what is left), `clock` is re-armed from inside its callback with at least
// 1 ms, and an entry armed while the callback runs waits for the next one: a task that sleeps 0 in
// a loop cannot keep the loop from polling.
//
// Teardown (tear_down) fires every entry on the clock's next callback with torn_down set: the
// operations settle as cancelled there, in a callback of the loop, not inside the destructor.
//
// Invariants (loop thread only):
//   - heap_[i]->index == i; each entry's (deadline, seq) is not below its parent's.
//   - `clock` is active exactly when the heap is not empty: a pending sleep keeps run() going.
//   - After tear_down nothing is armed again (check_open refuses new operations).
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

#include "uvrt/detail/timer.hpp"

namespace uvrt::detail {

class timers {
 public:
  void reserve() {
    if (heap_.size() == heap_.capacity()) heap_.reserve(heap_.empty() ? 8 : 2 * heap_.size());
  }
  void add(timer_entry* e, std::uint64_t deadline) noexcept;
  void remove(timer_entry* e) noexcept;
  bool empty() const noexcept { return heap_.empty(); }
  void tear_down() noexcept;
  void check_invariants() const noexcept;

  uv_timer_t clock;
  static void on_clock(uv_timer_t* h);

 private:
  static bool before(const timer_entry* a, const timer_entry* b) noexcept {
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
  }
  void place(timer_entry* e, std::size_t i) noexcept {
    heap_[i] = e;
    e->index = i;
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  timer_entry* pop() noexcept;
  void rearm() noexcept;

  std::vector<timer_entry*> heap_;
  std::uint64_t next_seq_ = 0;
  bool firing_ = false;    // inside on_clock
  bool torn_down_ = false;
};

}  // namespace uvrt::detail
