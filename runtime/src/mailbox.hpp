// The mailbox: what reaches the loop thread from elsewhere, or later.
//
//   - Posts: callables handed over by other threads (runtime::post, from_thread), queued under
//     `mutex_` and run on the loop thread by `wakeup`'s callback. uv_async_send is called under the
//     mutex too, so teardown can close `wakeup` once it has stopped accepting posts (close(),
//     which serves the last ones) without racing a late sender.
//   - Deferred continuations: a future settled early (cancel_mode::abandon, or shutdown's
//     timeout) never resumes its waiter inside that call; the job is parked here, holding a
//     reference, and its continuation runs on the loop's next turn.
//
// Invariants:
//   - `accepting_` only goes from true to false, under the mutex; after that nothing is queued.
//   - `wakeup` is unreferenced except while continuations wait in `deferred_` or a turn was
//     requested, which keeps the loop turning until they have run.
#pragma once

#include <uv.h>

#include <cstddef>
#include <mutex>
#include <vector>

#include "uvrt/runtime.hpp"

namespace uvrt::detail {

class core;

class mailbox {
 public:
  explicit mailbox(core& owner) noexcept : core_(owner) {}

  // Any thread. False once the mailbox is closed: `p` is then untouched and still the caller's.
  bool post(posted* p);
  // Refuses posts from now on and serves the ones queued. Loop thread.
  void close() noexcept;

  // Makes room to defer `more` jobs, so that deferring cannot fail later. May throw bad_alloc;
  // call before changing anything.
  void make_room_to_defer(std::size_t more);
  void defer(job_core* j) noexcept;
  bool nothing_deferred() const noexcept { return deferred_.empty(); }
  // Makes the loop turn once more and run `wakeup`'s callback, which ends with core::progress()
  // outside any callback scope: for teardown work that may not run under user code.
  void request_turn() noexcept;

  uv_async_t wakeup;
  static void on_wakeup(uv_async_t* handle);

 private:
  void serve_posts() noexcept;
  void resume_deferred() noexcept;
  void update_ref() noexcept;

  core& core_;
  std::mutex mutex_;
  posted* head_ = nullptr;
  posted* tail_ = nullptr;
  bool accepting_ = true;
  std::vector<job_core*> deferred_;  // abandoned jobs whose continuations wait to be resumed
  bool turn_requested_ = false;
};

}  // namespace uvrt::detail
