// Pool slots: how many of libuv's pool threads uvrt's carriers may hold at once, process-wide.
//
// libuv has one pool per process and one FIFO queue in front of it, shared with its own file
// system, DNS and uv_random work. uvrt keeps `pool size - options::reserved_threads` slots: a
// carrier (dispatch.hpp) holds one from its uv_queue_work until its after-work callback, so at any
// moment every runtime of the process together occupies at most that many threads, queued or
// running, and libuv's own requests find the reserved threads free. With no thread reserved a
// request still waits behind at most one job a thread: carriers give their thread back between
// jobs once their time slice is over.
//
// A runtime that finds no free slot waits in a FIFO of runtimes; a slot given back goes to the
// first of them (its dispatch's `wake` is signalled) instead of to whoever asks next, so a busy
// runtime that gives back and asks again cannot starve another one.
//
// Invariants (under the slots' mutex): free + granted + held = total; a runtime is in the FIFO at
// most once, and only while it holds no granted slot it has not taken.
// fork(): the child has none of the parent's carriers; its slots start afresh (all free).
#pragma once

namespace uvrt::detail {

class dispatch;

// Sets the number of slots: pool size - reserved threads. Called by the pool's start, once per
// process (and again in a forked child).
void set_pool_slots(int total) noexcept;
// fork(): the pool's start holds its lock and then this one across fork() (threadpool.cpp), in
// that order, as set_pool_slots takes them.
void lock_slots_for_fork() noexcept;
void unlock_slots_after_fork(bool child) noexcept;
// The number of slots, for sizing a runtime's carriers.
int pool_slots() noexcept;
// Takes up to `want` slots for `d` (slots granted to it first); if it gets fewer than `want`, `d`
// waits in the FIFO for the next one given back. Returns how many it got.
int take_slots(dispatch* d, int want) noexcept;
// Gives one slot back: to the first waiting runtime (signalling it), or to the free count.
void give_slot() noexcept;
// `d` is closing: it leaves the FIFO and gives back what was granted to it and not taken.
void forget_slots(dispatch* d) noexcept;

}  // namespace uvrt::detail
