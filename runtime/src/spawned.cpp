// Spawned tasks: the runtime's list of them, delivering a cancellation to what a task waits on,
// and what the teardown does with tasks. See uvrt/spawn.hpp and uvrt/detail/spawn_ctx.hpp.
//
// A cancellation reaches the pending future the task's chain is suspended on (spawn_ctx::awaiting)
// with the same mode; that co_await throws cancelled_error when it resumes. With nothing awaited
// (the task is running, or waits on an awaitable that is not uvrt's) it is kept and delivered at
// the chain's next suspension on a uvrt future. It is one-shot: a task that catches
// cancelled_error goes on like any other.
//
// Teardown: every spawned task is cancelled (wait) and runs on while the loop turns; once nothing
// of uvrt's is left that could resume them (no job in flight, no timer, nothing deferred), the
// tasks still suspended wait on something uvrt cannot settle: their frames are destroyed and
// their futures settle as cancelled (core::reap_stuck_tasks).
#include "core.hpp"
#include "drive.hpp"
#include "uvrt/spawn.hpp"

namespace uvrt::detail {

void deliver_cancel(spawn_ctx* ctx) noexcept {
  ctx->pending = false;
  job_core* j = ctx->awaiting;
  ctx->interrupted = j;
  cancel_quietly(j, ctx->mode);
}

cancel_result task_op::cancel(cancel_mode mode) {
  if (mode == cancel_mode::abandon) {
    make_room_to_defer(owner(), 2);  // this future's continuation and the awaited one's
    abandon_cell(cell_);
  }
  if (ctx_.interrupted) {
    // Delivered already and not yet resumed: an abandon now settles the awaited future at once.
    if (mode == cancel_mode::abandon) cancel_quietly(ctx_.interrupted, mode);
  } else {
    if (!ctx_.pending || mode == cancel_mode::abandon) ctx_.mode = mode;
    ctx_.pending = true;
    if (ctx_.awaiting) deliver_cancel(&ctx_);
  }
  return mode == cancel_mode::abandon ? cancel_result::abandoned : cancel_result::stop_requested;
}

void task_op::interrupt() noexcept {
  if (ctx_.interrupted) return;
  ctx_.mode = cancel_mode::wait;  // whatever an earlier cancel() asked for
  ctx_.pending = true;
  if (ctx_.awaiting) deliver_cancel(&ctx_);
}

void task_op::start(std::coroutine_handle<> h) noexcept {
  core* c = owner();
  next_task = c->tasks_head;
  if (next_task) next_task->prev_task = this;
  c->tasks_head = this;
  callback_scope scope(*c);
  h.resume();
}

void task_op::delist() noexcept {
  core* c = owner();
  if (prev_task) prev_task->next_task = next_task;
  else c->tasks_head = next_task;
  if (next_task) next_task->prev_task = prev_task;
  prev_task = next_task = nullptr;
}

void core::interrupt_tasks() noexcept {
  for (task_op* t = tasks_head; t; t = t->next_task) t->interrupt();
}

void core::reap_stuck_tasks() noexcept {
  // A task waiting on something that is not uvrt's goes first: destroying it settles its future,
  // which resumes a task that awaits it (with cancelled_error), and that task runs on until it
  // ends or suspends again (it can start no new work). Only when every task left awaits another's
  // future (a cycle) is one destroyed while it awaits a uvrt future.
  // A task resumed so deep in a chain of such settlements that its continuation was deferred
  // (publish) is not stuck either: the reap stops until the mailbox has resumed it, and its
  // callback comes back here. The frames' destructors are user code: in a callback scope.
  while (tasks_head) {
    task_op* victim = tasks_head;
    for (task_op* t = tasks_head; t; t = t->next_task)
      if (!t->awaits_uvrt()) {
        victim = t;
        break;
      }
    {
      callback_scope scope(*this);
      victim->destroy_stuck();
    }
    if (!settled()) return;
  }
}

}  // namespace uvrt::detail
