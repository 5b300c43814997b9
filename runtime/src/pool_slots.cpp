// Pool slots: see pool_slots.hpp for the design and invariants.
#include "pool_slots.hpp"

#include <mutex>

#include "dispatch.hpp"

namespace uvrt::detail {

namespace {

std::mutex slots_mutex;
int total_slots = 0;
int free_slots = 0;
dispatch* waiters_head = nullptr;  // runtimes waiting for a slot, FIFO through slot_next
dispatch* waiters_tail = nullptr;

void wait_in_line(dispatch* d) noexcept {
  if (d->slot_waiting) return;
  d->slot_waiting = true;
  d->slot_next = nullptr;
  if (waiters_tail) waiters_tail->slot_next = d;
  else waiters_head = d;
  waiters_tail = d;
}

void leave_line(dispatch* d) noexcept {
  if (!d->slot_waiting) return;
  dispatch* prev = nullptr;
  for (dispatch* w = waiters_head; w; prev = w, w = w->slot_next) {
    if (w != d) continue;
    if (prev) prev->slot_next = d->slot_next;
    else waiters_head = d->slot_next;
    if (waiters_tail == d) waiters_tail = prev;
    break;
  }
  d->slot_waiting = false;
}

// Under the mutex: the slot goes to the first waiting runtime, or back to the free count.
void give_locked() noexcept {
  if (dispatch* w = waiters_head) {
    waiters_head = w->slot_next;
    if (!waiters_head) waiters_tail = nullptr;
    w->slot_waiting = false;
    ++w->slots_granted;
    // Under the mutex: forget_slots takes it before the handle closes, so this never signals a
    // closed handle.
    uv_async_send(&w->wake);
    return;
  }
  ++free_slots;
}

}  // namespace

void set_pool_slots(int total) noexcept {
  std::lock_guard lock(slots_mutex);
  free_slots += total - total_slots;
  total_slots = total;
}

void lock_slots_for_fork() noexcept { slots_mutex.lock(); }

void unlock_slots_after_fork(bool child) noexcept {
  if (child) {
    // The parent's carriers are gone, and so are its waiting runtimes' loops.
    free_slots = total_slots;
    waiters_head = waiters_tail = nullptr;
  }
  slots_mutex.unlock();
}

int pool_slots() noexcept {
  std::lock_guard lock(slots_mutex);
  return total_slots;
}

int take_slots(dispatch* d, int want) noexcept {
  std::lock_guard lock(slots_mutex);
  int got = d->slots_granted < want ? d->slots_granted : want;
  d->slots_granted -= got;
  // Slots granted to d and not wanted any more go on to whoever waits.
  while (d->slots_granted > 0) {
    --d->slots_granted;
    give_locked();
  }
  // Free slots only if nobody waits before d: a waiting runtime is served first.
  while (got < want && free_slots > 0 && (!waiters_head || waiters_head == d)) {
    --free_slots;
    ++got;
  }
  if (got < want) wait_in_line(d);
  else leave_line(d);
  return got;
}

void give_slot() noexcept {
  std::lock_guard lock(slots_mutex);
  give_locked();
}

void forget_slots(dispatch* d) noexcept {
  std::lock_guard lock(slots_mutex);
  leave_line(d);
  while (d->slots_granted > 0) {
    --d->slots_granted;
    give_locked();
  }
}

}  // namespace uvrt::detail
