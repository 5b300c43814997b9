// A timer entry: something a loop operation wants done on the loop thread at a deadline (a
// sleep's end, a timeout, the end of a grace period). A runtime keeps its entries in one heap
// behind one libuv timer (runtime/src/timers.hpp), so an operation costs no handle of its own.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../export.h"

namespace uvrt::detail {

class core;

struct timer_entry {
  static constexpr std::size_t not_armed = SIZE_MAX;

  // Loop thread. `torn_down`: the runtime's teardown fired it early, to settle as cancelled.
  void (*fire)(timer_entry* self, bool torn_down) noexcept;
  std::uint64_t deadline = 0;  // clock_now() nanoseconds
  std::uint64_t seq = 0;       // arming order: entries with one deadline fire in that order
  std::size_t index = not_armed;  // in the heap
};

// Makes room for one more armed entry: may throw bad_alloc. Loop thread.
UVRT_EXTERN void reserve_timer(core* c);
// Arms `e` (not armed) to fire at `deadline` (clock_now() nanoseconds; a past one fires on the
// next turn). Loop thread, while the runtime takes work, with room made by reserve_timer (or left
// by an entry that just fired or was disarmed).
UVRT_EXTERN void arm(core* c, timer_entry* e, std::uint64_t deadline) noexcept;
// Disarms `e` if it is armed. Loop thread.
UVRT_EXTERN void disarm(core* c, timer_entry* e) noexcept;
// The clock deadlines are on: steady_clock's nanoseconds (CLOCK_MONOTONIC, as uv_hrtime()).
UVRT_EXTERN std::uint64_t clock_now() noexcept;

}  // namespace uvrt::detail
