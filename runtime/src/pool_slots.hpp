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
// A runtime that finds no free slot waits in a list; a slot given back signals every runtime in it
// (its dispatch's `wake`), and each asks again on its loop. A slot is never promised to one
// runtime: a loop that does not turn meanwhile (blocked inside another runtime's run on another
// loop, say) would keep it from everyone else for ever.
//
// Invariants (under the slots' mutex): free + held = total; a runtime is in the list at most once,
// and only until the next slot is given back or it closes.
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
// Whether a slot is free, without the mutex: a hint, exact for a caller that holds the dispatch
// lock under which the last slot it could care about was given back.
bool slot_free() noexcept;
// Takes up to `want` slots for `d`; if it gets fewer, `d` is signalled when one is given back.
// Returns how many it got.
int take_slots(dispatch* d, int want) noexcept;
// Gives one slot back and signals every runtime waiting for one. Any thread.
// A carrier gives its slot back under its runtime's dispatch lock (this lock inside that one).
void give_slot() noexcept;
// `d` is closing: it is signalled no more.
void forget_slots(dispatch* d) noexcept;

}  // namespace uvrt::detail
