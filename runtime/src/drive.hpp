// Drive: the one place uvrt turns a loop on its own behalf, and what a thread is inside of.
//
// Each thread keeps a stack of frames, one per uvrt scope that is active on it:
//   - a turn_scope: uvrt turns (or is about to turn) a runtime's loop from here: run, block_on,
//     shutdown, the destructor, the thread that waits for abandoned jobs. turn_scope::turn is the
//     only call of uv_run on a runtime's loop in uvrt;
//   - a callback_scope: uvrt runs user code on a runtime's behalf (a continuation, a task
//     resumed by it, a posted callable, a C done callback).
//
// The re-entrancy guard belongs to the loop, not to the runtime: a thread that has any frame for
// loop L is inside L, and may not turn L again, whichever runtime on L asks (nested uv_run on one
// loop can block forever: libuv's done pass may already hold the completion the inner run waits
// for). run, block_on, shutdown and the C API's run and destroy refuse; the C++ destructor only
// begins the teardown (lifecycle.hpp). What uvrt cannot see: the application's own callbacks on a
// loop that the application turns with its own uv_run, where no frame of uvrt's exists.
//
// Invariants (asserted in turn_scope::turn): a thread turns a loop only from a turn_scope that is
// the top frame of its stack, and no other frame for that loop is below it. So at any moment,
// for each loop, at most one frame turns it, and "who turns this loop" is that frame.
//
// The top frame's core is the runtime "running on this thread" for the free uvrt::to_thread.
#pragma once

#include <uv.h>

namespace uvrt::detail {

class core;

struct frame {
  uv_loop_t* loop;
  core* owner;
  frame* prev;
  bool turns;     // a turn_scope
  bool rethrows;  // run or block_on: rethrows what continuations leave in core::unhandled
};

// The top of this thread's stack of frames. Read on every continuation, so callback_scope is
// inline; the initial-exec model makes it a plain load instead of a __tls_get_addr call from a
// shared library.
// constinit: no dynamic initialisation, so other files read it without a TLS wrapper call.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local frame* tls_top;

// Defined inline at the end of core.hpp, which has the core it reads.
class callback_scope {
 public:
  explicit callback_scope(core& c) noexcept;
  ~callback_scope();
  callback_scope(const callback_scope&) = delete;
  callback_scope& operator=(const callback_scope&) = delete;

 private:
  frame f_;
};

class turn_scope {
 public:
  // Precondition: this thread may turn c's loop (it owns it, or the core is detached and this is
  // its reaper) and is not inside it.
  explicit turn_scope(core& c, bool rethrows = false) noexcept;
  ~turn_scope();
  turn_scope(const turn_scope&) = delete;
  turn_scope& operator=(const turn_scope&) = delete;

  // uv_run(loop, mode): the one place uvrt turns a runtime's loop.
  int turn(uv_run_mode mode) noexcept;

 private:
  frame f_;
};

// True if this thread has a frame for `loop`: it is inside that loop (see above).
bool inside_loop(const uv_loop_t* loop) noexcept;
// True if this thread has a callback_scope for `loop`: user code uvrt runs is on the stack.
bool in_callback(const uv_loop_t* loop) noexcept;
// True if a turn_scope for `c` is on this thread's stack: that frame will see the core after the
// loop returns, so nothing else may free it.
bool held_here(const core* c) noexcept;
// True if a run or block_on of `c` is on this thread's stack.
bool driven_here(const core* c) noexcept;

}  // namespace uvrt::detail
