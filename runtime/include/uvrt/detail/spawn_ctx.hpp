// What a spawned task is suspended on, shared by the task and every task it awaits (they run as
// one chain), so that cancelling the spawned task's future reaches the operation the innermost
// task waits for. See runtime::spawn.
#pragma once

#include "../cancel.hpp"
#include "../export.h"

namespace uvrt::detail {

struct job_core;

struct spawn_ctx {
  // The pending future (a job's or a loop operation's) the chain is suspended on, or null.
  job_core* awaiting = nullptr;
  // The awaited future a cancellation was delivered to: the co_await suspended on it throws
  // cancelled_error when it resumes, whatever it settled with.
  job_core* interrupted = nullptr;
  // A cancellation asked for while nothing was awaited: delivered at the next suspension.
  bool pending = false;
  cancel_mode mode = cancel_mode::wait;
  // The root task has finished: the spawned operation `owner` settles its future and destroys
  // the frame.
  void (*finished)(void* owner) noexcept = nullptr;
  void* owner = nullptr;
};

// Delivers a pending cancellation to the future the chain has just suspended on. Never throws:
// room it cannot make for an abandon turns it into a wait.
UVRT_EXTERN void deliver_cancel(spawn_ctx* ctx) noexcept;

}  // namespace uvrt::detail
