/// @file
/// The coroutine type of uvrt, uvrt::task.
///
/// @class uvrt::task
/// uvrt::task<T>: a lazy coroutine that can co_await futures and other tasks.
///
/// A task does nothing until it is awaited or handed to runtime::block_on, so its body always
/// runs on a loop thread where the free uvrt::to_thread finds its runtime. An exception that
/// escapes the body is kept and rethrown, type intact, to whoever awaits the task. Completion
/// transfers control straight to the awaiting coroutine (symmetric transfer), so in optimised
/// builds, where the compiler makes that transfer a tail call, long chains of tasks do not grow
/// the stack.
///
/// @par Thread-safety
/// Distinct objects: safe. Shared objects: unsafe. A task runs on its runtime's
/// loop thread.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "detail/spawn_ctx.hpp"
#include "errors.hpp"

namespace uvrt {

class runtime;
template <class T = void>
class task;

namespace detail {

struct task_access;

struct task_promise_base {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr error;
  // The spawned task's chain this task runs in (runtime::spawn), or null; `spawned` marks the
  // chain's root, whose end settles the spawned future.
  spawn_ctx* ctx = nullptr;
  bool started = false;
  bool spawned = false;

  spawn_ctx* spawn_context() const noexcept { return ctx; }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      task_promise_base& p = h.promise();
      if (!p.spawned) return p.continuation;
      // The spawned operation settles its future and destroys this frame: nothing here may be
      // touched afterwards.
      p.ctx->finished(p.ctx->owner);
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct task_promise : task_promise_base {
  std::optional<T> value;

  task<T> get_return_object() noexcept;

  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }

  T result() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct task_promise<void> : task_promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
  static_assert(!std::is_reference_v<T>, "uvrt::task<T>: T must not be a reference");

 public:
  /// The coroutine's promise (internal).
  using promise_type = detail::task_promise<T>;
  /// The coroutine's handle.
  using handle_type = std::coroutine_handle<promise_type>;

  /// An empty task, with no coroutine: valid() is false.
  task() noexcept = default;
  /// Takes over `other`'s coroutine; `other` is left empty.
  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  /// Destroys this task's coroutine as the destructor does, then takes over `other`'s.
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;             ///< Not copyable: one owner per coroutine.
  task& operator=(const task&) = delete;  ///< Not copyable: one owner per coroutine.

  /// Destroying a task that has not finished destroys its frame: futures it holds are detached
  /// and no longer resume it.
  ~task() { destroy(); }

  /// False for a default-constructed or moved-from task.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  /// What `co_await` on a task uses; not meant to be named.
  ///
  /// @par Thread-safety
  /// As for task: its runtime's loop thread.
  class awaiter {
   public:
    /// Awaits the task whose coroutine is `h`.
    explicit awaiter(handle_type h) noexcept : h_(h) {}
    /// False: awaiting a task always starts it.
    bool await_ready() const noexcept { return false; }
    /// Starts the task, to resume `waiter` when it finishes (symmetric transfer).
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> waiter) noexcept {
      h_.promise().continuation = waiter;
      // An awaited task runs in its awaiter's chain: a cancel of a spawned task reaches it.
      if constexpr (requires(P& p) { p.spawn_context(); }) h_.promise().ctx = waiter.promise().spawn_context();
      return h_;
    }
    /// The task's value, or its exception rethrown.
    T await_resume() { return h_.promise().result(); }

   private:
    handle_type h_;
  };

  /// Starts the task and resumes the awaiting coroutine when it finishes. A task can be awaited
  /// once; awaiting an empty or already started task throws usage_error.
  awaiter operator co_await() && {
    start("co_await uvrt::task");
    return awaiter(h_);
  }


 private:
  friend struct detail::task_promise<T>;
  friend class runtime;
  friend struct detail::task_access;
  explicit task(handle_type h) noexcept : h_(h) {}

  void start(const char* what) {
    if (!h_) throw usage_error(std::string(what) + ": the task is empty (moved from)");
    if (h_.promise().started) throw usage_error(std::string(what) + ": the task was already started");
    h_.promise().started = true;
  }

  void destroy() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

  handle_type h_;
};

namespace detail {

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}

inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

}  // namespace detail

}  // namespace uvrt
