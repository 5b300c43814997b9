// Pool slots: see pool_slots.hpp for the design and invariants.
#include "pool_slots.hpp"

#include <atomic>
#include <mutex>
#include <utility>

#include "dispatch.hpp"

namespace uvrt::detail {

namespace {

std::mutex slots_mutex;
int total_slots = 0;
int free_slots = 0;
std::atomic<int> free_hint{0};  // free_slots, for a look without the mutex
dispatch* waiters = nullptr;  // runtimes waiting for a slot, through slot_next

}  // namespace

void set_pool_slots(int total) noexcept {
  std::lock_guard lock(slots_mutex);
  free_slots += total - total_slots;
  total_slots = total;
  free_hint.store(free_slots, std::memory_order_relaxed);
}

void lock_slots_for_fork() noexcept { slots_mutex.lock(); }

void unlock_slots_after_fork(bool child) noexcept {
  if (child) {
    // The parent's carriers are gone, and so are its waiting runtimes' loops.
    free_slots = total_slots;
    free_hint.store(free_slots, std::memory_order_relaxed);
    waiters = nullptr;
  }
  slots_mutex.unlock();
}

bool slot_free() noexcept { return free_hint.load(std::memory_order_relaxed) > 0; }

int pool_slots() noexcept {
  std::lock_guard lock(slots_mutex);
  return total_slots;
}

int take_slots(dispatch* d, int want) noexcept {
  std::lock_guard lock(slots_mutex);
  int got = 0;
  while (got < want && free_slots > 0) {
    --free_slots;
    ++got;
  }
  free_hint.store(free_slots, std::memory_order_relaxed);
  if (got < want && !d->slot_waiting) {
    d->slot_waiting = true;
    d->slot_next = waiters;
    waiters = d;
  }
  return got;
}

void give_slot() noexcept {
  std::lock_guard lock(slots_mutex);
  ++free_slots;
  free_hint.store(free_slots, std::memory_order_relaxed);
  // Every waiting runtime is signalled and asks again; whichever loop comes first takes the slot.
  // Under the mutex: forget_slots takes a runtime out before its handle closes, so this never
  // signals a closed handle.
  for (dispatch* w = std::exchange(waiters, nullptr); w; w = w->slot_next) {
    w->slot_waiting = false;
    w->signal();
  }
}

void forget_slots(dispatch* d) noexcept {
  std::lock_guard lock(slots_mutex);
  if (!d->slot_waiting) return;
  for (dispatch** p = &waiters; *p; p = &(*p)->slot_next) {
    if (*p != d) continue;
    *p = d->slot_next;
    break;
  }
  d->slot_waiting = false;
}

}  // namespace uvrt::detail
