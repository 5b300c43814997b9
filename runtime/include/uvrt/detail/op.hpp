// Loop operations: the futures no pool thread settles (a sleep, a timeout, when_all, when_any, a
// spawned task). Each is an `op` that lives in the same block as its future's state, a "cell":
//
//   [ job_core (vt = cell_ops<T>::table) | slot (T or exception_ptr) | the op ]
//
// A cell is a job_core as the future sees it: the same state, continuation, reference count and
// release, so co_await, then(), block_on and get() work on it unchanged. It never enters a
// runtime's queue, backlog or counters: its op settles it on the loop thread through the
// functions below, and future::cancel reaches the op through the table's `cancel`. `prev` points
// at the op while the cell is pending.
//
// Ownership: the cell starts with two references, the future's and the op's. The op drops its own
// when it retires (after settling the cell, or after the cell was abandoned and the op has nothing
// left to wait for); whoever drops the last one destroys the outcome, then the op is already gone,
// and frees the block.
//
// Invariants (loop thread only): a cell settles once, through settle_* (or abandon_cell, which
// settles it as cancelled now and defers its continuation); settle_* on an abandoned cell do
// nothing. No op resumes a continuation from inside future::cancel.
#pragma once

#include <cstddef>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "../cancel.hpp"
#include "../export.h"
#include "job.hpp"

namespace uvrt::detail {

class op {
 public:
  op(const op&) = delete;
  op& operator=(const op&) = delete;

  // future::cancel on the op's pending cell: loop thread, checked by the caller.
  virtual cancel_result cancel(cancel_mode mode) = 0;
  job_core* cell() const noexcept { return cell_; }

 protected:
  explicit op(job_core* cell) noexcept : cell_(cell) {}
  virtual ~op() = default;

  core* owner() const noexcept { return core_of(cell_); }
  bool cell_open() const noexcept { return !(cell_->flags & flag_abandoned); }

  // Destroys the op and drops its reference to the cell: the op's last act.
  void retire() noexcept {
    job_core* j = cell_;
    j->prev = nullptr;
    this->~op();
    j->vt->release(j);
  }

  job_core* const cell_;
};

// Settles `j` (not abandoned) with the outcome its slot now holds: publishes the state and
// resumes the continuation, if any, in a callback_scope of the cell's runtime.
UVRT_EXTERN void publish(job_core* j, job_state s) noexcept;
// Settles `j` as cancelled now and defers its continuation to the loop's next turn (the
// mailbox), as cancel_mode::abandon does for a job. Makes room first: may throw bad_alloc, then
// having changed nothing.
UVRT_EXTERN void abandon_cell(job_core* j);
// The cancel entry of every cell's table.
UVRT_EXTERN cancel_result cancel_cell(job_core* j, cancel_mode mode);
// Throws usage_error off the loop thread of `c` and runtime_closed_error once its teardown began:
// the checks of every call that creates a loop operation on `c`. `what` names the call.
UVRT_EXTERN void check_open(core* c, const char* what);

template <class T>
struct cell_ops {
  static constexpr job_vtable table{nullptr, nullptr, nullptr, &release<T>, &cancel_cell};
};

// Builds the value in the slot, then publishes it. If building throws, nothing changed.
template <class T, class... A>
void settle_value(job_core* j, A&&... a) {
  if (j->flags & flag_abandoned) return;
  ::new (static_cast<void*>(slot<T>(j))) T(std::forward<A>(a)...);
  publish(j, job_state::value);
}

inline void settle_void(job_core* j) noexcept {
  if (j->flags & flag_abandoned) return;
  publish(j, job_state::value);
}

inline void settle_error(job_core* j, std::exception_ptr e) noexcept {
  if (j->flags & flag_abandoned) return;
  ::new (static_cast<void*>(slot<std::exception_ptr>(j))) std::exception_ptr(std::move(e));
  publish(j, job_state::error);
}

inline void settle_cancelled(job_core* j) noexcept {
  if (j->flags & flag_abandoned) return;
  publish(j, job_state::cancelled);
}

// settle_cancelled for a uvrt::cancelled_error, settle_error for anything else.
UVRT_EXTERN void settle_failure(job_core* j, std::exception_ptr e) noexcept;
// Settles `to` with the outcome of the settled `from` (a value of the same T is moved), then
// drops the reference `from` held.
template <class T>
void settle_from(job_core* to, job_core* from) noexcept {
  switch (from->state.load(std::memory_order_acquire)) {
    case job_state::error:
      settle_error(to, *slot<std::exception_ptr>(from));
      break;
    case job_state::cancelled:
      settle_cancelled(to);
      break;
    default:
      if constexpr (std::is_void_v<T>) {
        settle_void(to);
      } else {
        try {
          settle_value<T>(to, std::move(*slot<T>(from)));
        } catch (...) {
          settle_error(to, std::current_exception());
        }
      }
  }
  from->vt->release(from);
}
// Makes room to defer `n` more continuations (abandons), so that they cannot fail later.
UVRT_EXTERN void make_room_to_defer(core* c, std::size_t n);
// cancel(j, mode), for an op that must not throw: an abandon that finds no room is made a wait.
UVRT_EXTERN void cancel_quietly(job_core* j, cancel_mode mode) noexcept;

// Allocates a cell for a future<T> with the op `Op` behind it, built from `args` after the cell's
// fields; returns the op. The cell holds its two references (the future's and the op's).
template <class T, class Op, class... A>
Op* make_op(core* c, A&&... args) {
  static_assert(std::is_base_of_v<op, Op>);
  static_assert(alignof(Op) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned ops are not supported");
  constexpr std::size_t slot_end = [] {
    std::size_t n = slot_offset(false, alignof(std::exception_ptr)) + sizeof(std::exception_ptr);
    if constexpr (!std::is_void_v<T>) {
      const std::size_t r = slot_offset(false, alignof(T)) + sizeof(T);
      n = n > r ? n : r;
    }
    return n;
  }();
  constexpr std::size_t op_offset = align_up(slot_end, alignof(Op));
  constexpr std::size_t size = op_offset + sizeof(Op);
  void* raw = allocate_block(size);
  auto* j = ::new (raw) job_core;
  j->vt = &cell_ops<T>::table;
  j->owner = c;
  j->prev = nullptr;
  j->next = nullptr;
  j->stamp = 0;
  j->cont = nullptr;
  j->refs.store(2, std::memory_order_relaxed);
  j->state.store(job_state::pending, std::memory_order_relaxed);
  j->outcome = job_state::pending;
  j->flags = 0;
  j->size_class = static_cast<std::uint8_t>(block_class(size));
  Op* o;
  try {
    o = ::new (static_cast<char*>(raw) + op_offset) Op(j, std::forward<A>(args)...);
  } catch (...) {
    free_block(raw, size);
    throw;
  }
  j->prev = reinterpret_cast<job_core*>(static_cast<op*>(o));
  return o;
}

inline op* op_of(job_core* j) noexcept { return reinterpret_cast<op*>(j->prev); }

}  // namespace uvrt::detail
