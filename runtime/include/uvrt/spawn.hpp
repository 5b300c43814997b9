/// @file
/// spawn: running a task on the loop without anyone awaiting it (asyncio's create_task, tokio's
/// spawn), and cancelling it through its future.
///
/// Thread-safety: as for future (future.hpp): the loop thread of the runtime.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "detail/op.hpp"
#include "detail/spawn_ctx.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "task.hpp"

namespace uvrt::detail {

struct task_access {
  template <class T>
  static void check(const task<T>& t, const char* what) {
    if (!t.h_) throw usage_error(std::string(what) + ": the task is empty (moved from)");
    if (t.h_.promise().started) throw usage_error(std::string(what) + ": the task was already started");
  }
  template <class T>
  static std::coroutine_handle<task_promise<T>> handle_of(const task<T>& t) noexcept {
    return t.h_;
  }
  template <class T>
  static std::coroutine_handle<task_promise<T>> take(task<T>& t) noexcept {
    t.h_.promise().started = true;
    return std::exchange(t.h_, {});
  }
};

// The half of a spawned task that does not depend on its type (runtime/src/spawned.cpp): the
// runtime's list of spawned tasks, cancellation, and the teardown.
class UVRT_EXTERN task_op : public op {
 public:
  // Delivers the cancellation to the operation the chain waits on (spawn_ctx), or to the next one.
  cancel_result cancel(cancel_mode mode) override;
  // Teardown: a cancellation (wait) is delivered, and the task runs to its end.
  void interrupt() noexcept;
  // Teardown, once nothing uvrt runs could resume it: the frame is destroyed and the future
  // settles as cancelled.
  virtual void destroy_stuck() noexcept = 0;
  // The chain is suspended on a uvrt future (a job's or a loop operation's).
  bool awaits_uvrt() const noexcept { return ctx_.awaiting != nullptr; }

  task_op* next_task = nullptr;  // the runtime's list of spawned tasks
  task_op* prev_task = nullptr;

 protected:
  explicit task_op(job_core* cell) noexcept : op(cell) {}
  // Enlists the task and runs it until its first suspension, in a callback_scope.
  void start(std::coroutine_handle<> h) noexcept;
  // Off the runtime's list; then settles the cell with the task's outcome.
  void delist() noexcept;

  spawn_ctx ctx_;
};

template <class T>
class spawned_task final : public task_op {
 public:
  using handle = std::coroutine_handle<task_promise<T>>;

  spawned_task(job_core* cell, handle h) noexcept : task_op(cell), h_(h) {
    ctx_.finished = &on_finished;
    ctx_.owner = this;
    h.promise().ctx = &ctx_;
    h.promise().spawned = true;
  }

  void run() noexcept { start(h_); }

  void destroy_stuck() noexcept override {
    std::exchange(h_, {}).destroy();
    delist();
    settle_cancelled(cell_);
    retire();
  }

 private:
  // The root task is at its final suspension: its outcome is taken out, the frame destroyed, and
  // only then is the future settled (its waiter may do anything, this runtime's teardown included).
  static void on_finished(void* owner) noexcept {
    auto* self = static_cast<spawned_task*>(owner);
    task_promise<T>& p = self->h_.promise();
    std::exception_ptr error = std::move(p.error);
    std::optional<value_of_t> value;
    if (!error) {
      if constexpr (std::is_void_v<T>) {
        value.emplace();
      } else {
        try {
          value.emplace(std::move(*p.value));
        } catch (...) {
          error = std::current_exception();
        }
      }
    }
    std::exchange(self->h_, {}).destroy();
    self->delist();
    if (error) {
      settle_failure(self->cell_, std::move(error));
    } else if constexpr (std::is_void_v<T>) {
      settle_void(self->cell_);
    } else {
      try {
        settle_value<T>(self->cell_, std::move(*value));
      } catch (...) {
        settle_error(self->cell_, std::current_exception());
      }
    }
    self->retire();
  }

  using value_of_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  handle h_;
};

// Checks as every new loop operation does (check_open), takes the task and starts it.
template <class T>
future<T> spawn_on(core* c, task<T>& t, const char* what) {
  check_open(c, what);
  task_access::check(t, what);
  auto* op = make_op<T, spawned_task<T>>(c, task_access::handle_of(t));
  task_access::take(t);  // nothing can fail from here on
  future<T> result = adopt_future<T>(op->cell());
  op->run();
  return result;
}

}  // namespace uvrt::detail
