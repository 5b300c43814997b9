// The runtime's lifecycle: one phase, moving forward only, changed in one place (core::advance in
// lifecycle.cpp, which asserts this table).
//
//   phase      what holds                                         left for           when, by
//   ---------  -------------------------------------------------  -----------------  -----------------------------------
//   open       work accepted                                      stopped, detached  shutdown() / the destructor
//   stopped    work refused (runtime_closed_error, UVRT_ECLOSING);  detached          the destructor
//              the runtime object still exists
//   detached   the runtime object is gone; queued jobs cancelled,   closing            progress(): nothing in flight but
//              running ones asked to stop, spawned tasks cancelled,                     abandoned jobs, no deferred continuation,
//              sleeps and timeouts settling as cancelled; posts                         no timer armed (stuck spawned tasks are
//              still served                                                             then destroyed),
//                                                                                      every carrier back unless one holds an
//                                                                                      abandoned job
//   closing    posts refused (the last ones served); uvrt's         draining, closed   the last close callback: draining if
//              handles closing                                                         carriers are still out
//   draining   no handle of uvrt's on the loop; libuv still holds   closed             the last carrier back (its after-work
//              carriers, some with jobs shutdown() abandoned (its                      callback takes its abandoned jobs)
//              requests keep an application's uv_run(UV_RUN_DEFAULT)
//              going)
//   closed     nothing of uvrt's left on the loop                   (freed)            see "who frees" below
//
// Who turns the loop while a detached core finishes (drive.hpp has the one function that turns):
//   - the destructor, called outside the loop: it turns until the phase is draining or closed;
//   - called inside the loop (from a uvrt callback of any runtime on that loop), it cannot: the
//     outermost uvrt frame of this core on the stack (run, block_on, shutdown) finishes the
//     teardown before it returns; with none (the application turns its loop with uv_run), the
//     application's later turns do;
//   - in draining, an own loop is turned by a thread of uvrt's until the carriers are back;
//     an application's loop gets them back on its own turns.
// Who frees the core: whoever sees `closed` with no uvrt frame holding the core on the stack:
// the frame itself as it unwinds, else the libuv callback that reached `closed` (the last close
// callback, or the last carrier's after-work callback).
//
// fork(): a child inherits the core but not its jobs or its loop's kernel objects, which it shares
// with the parent. In the child every call but the destructor is refused, and the destructor
// leaves the core alone (it is not freed: the child usually execs or exits soon).
#pragma once

#include <cstdint>

namespace uvrt::detail {

enum class phase : std::uint8_t { open, stopped, detached, closing, draining, closed };

constexpr bool may_advance(phase from, phase to) noexcept {
  switch (to) {
    case phase::stopped:
      return from == phase::open;
    case phase::detached:
      return from == phase::open || from == phase::stopped;
    case phase::closing:
      return from == phase::detached;
    case phase::draining:
      return from == phase::closing;
    case phase::closed:
      return from == phase::closing || from == phase::draining;
    case phase::open:
      return false;
  }
  return false;
}

}  // namespace uvrt::detail
