// The core's construction, its handles, and fork detection. See core.hpp for the layout.
#include "core.hpp"

#include <pthread.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "drive.hpp"

namespace uvrt::detail {

namespace {

std::once_flag fork_handler_installed;

// Every live core, so that an own loop being closed can tell other runtimes' handles from the
// application's. Held across fork() by the handlers below, so a child never inherits it locked.
std::mutex live_mutex;
core* live_head = nullptr;
bool forked_child = false;  // set by the fork handler, in the child only

// In a child forked from inside uvrt's frames (a continuation, a posted callable, a done callback,
// or the application's callback while run or block_on turns the loop): every loop with a frame on
// the forking thread's stack is being turned below the fork, and is the parent's (it shares the
// parent's epoll instance and eventfds). uv_stop makes each uv_run under way return after this
// iteration instead of polling; turn_scope::turn refuses to start another.
void stop_inherited_turns() noexcept {
  for (frame* f = tls_top; f; f = f->prev) uv_stop(f->loop);
}

}  // namespace

// In the child, every core alive at fork() is the parent's: it is marked once, here, so that
// inherited() is one load on every job (getpid() would be a system call in glibc).
void core::install_fork_handler() {
  std::call_once(fork_handler_installed, [] {
    if (pthread_atfork([] { live_mutex.lock(); }, [] { live_mutex.unlock(); },
                       [] {
                         forked_child = true;
                         for (core* c = live_head; c; c = c->live_next_) c->inherited_ = true;
                         live_mutex.unlock();
                         stop_inherited_turns();
                       }) != 0)
      throw std::bad_alloc();
  });
}

void fatal(const char* message) noexcept {
  std::fprintf(stderr, "uvrt: fatal usage error: %s\n", message);
  std::abort();
}

core::core(uv_loop_t* app_loop, int slots, std::size_t max_queued)
    : loop(app_loop ? app_loop : &own_loop_),
      owns_loop(app_loop == nullptr),
      max_queued(max_queued),
      dispatch_(*this, slots),
      settle_(*this),
      mail_(*this) {
  install_fork_handler();
  if (owns_loop) {
    if (int rc = uv_loop_init(&own_loop_); rc != 0)
      throw std::runtime_error(std::string("uvrt::runtime: uv_loop_init failed: ") + uv_strerror(rc));
  }
  try {
    init_handles();
  } catch (...) {
    if (owns_loop) uv_loop_close(&own_loop_);
    throw;
  }
  std::lock_guard lock(live_mutex);
  live_next_ = live_head;
  if (live_head) live_head->live_prev_ = this;
  live_head = this;
}

core::~core() {
  std::lock_guard lock(live_mutex);
  if (live_prev_) live_prev_->live_next_ = live_next_;
  else live_head = live_next_;
  if (live_next_) live_next_->live_prev_ = live_prev_;
}

bool core::in_forked_child() noexcept { return forked_child; }

bool core::owns(const uv_handle_t* h) const noexcept {
  return h == reinterpret_cast<const uv_handle_t*>(&mail_.wakeup) ||
         h == reinterpret_cast<const uv_handle_t*>(&dispatch_.wake) ||
         h == reinterpret_cast<const uv_handle_t*>(&settle_.slicer) ||
         h == reinterpret_cast<const uv_handle_t*>(&settle_.spinner) ||
         h == reinterpret_cast<const uv_handle_t*>(&timers_.clock) ||
         h == reinterpret_cast<const uv_handle_t*>(&deadline_);
}

core* core::owner_of(const uv_handle_t* h) noexcept {
  std::lock_guard lock(live_mutex);
  for (core* c = live_head; c; c = c->live_next_)
    if (c->loop == h->loop && c->owns(h)) return c;
  return nullptr;
}

// Only uv_async_init can fail (the loop's first one needs an eventfd), and the async handles come
// first, so a failure leaves nothing of the runtime linked into the loop (a second async handle
// cannot fail once the first one has the eventfd). The other four only fill in their structs.
void core::init_handles() {
  if (int rc = uv_async_init(loop, &mail_.wakeup, &mailbox::on_wakeup); rc != 0)
    throw std::runtime_error(std::string("uvrt::runtime: uv_async_init failed: ") + uv_strerror(rc));
  [[maybe_unused]] int rc = uv_async_init(loop, &dispatch_.wake, &dispatch::on_wake);
  assert(rc == 0);
  rc = uv_check_init(loop, &settle_.slicer);
  assert(rc == 0);
  rc = uv_idle_init(loop, &settle_.spinner);
  assert(rc == 0);
  rc = uv_timer_init(loop, &timers_.clock);
  assert(rc == 0);
  rc = uv_timer_init(loop, &deadline_);
  assert(rc == 0);
  uv_handle_t* handles[] = {reinterpret_cast<uv_handle_t*>(&mail_.wakeup), reinterpret_cast<uv_handle_t*>(&dispatch_.wake),
                            reinterpret_cast<uv_handle_t*>(&settle_.slicer), reinterpret_cast<uv_handle_t*>(&settle_.spinner),
                            reinterpret_cast<uv_handle_t*>(&timers_.clock), reinterpret_cast<uv_handle_t*>(&deadline_)};
  for (uv_handle_t* h : handles) {
    h->data = this;
    // None keeps the loop alive on its own: wakeup is referenced only while continuations wait
    // in the mailbox, wake only while jobs wait with no carrier out for them (dispatch.hpp);
    // spinner and the timers' clock are never unreferenced, but active only while the backlog is
    // not empty (settle.hpp) or a deadline is armed (timers.hpp).
    if (h != reinterpret_cast<uv_handle_t*>(&settle_.spinner) && h != reinterpret_cast<uv_handle_t*>(&timers_.clock))
      uv_unref(h);
  }
  open_handles_ = 6;
}

void core::close_handles(uv_close_cb closed) noexcept {
  uv_close(reinterpret_cast<uv_handle_t*>(&mail_.wakeup), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&dispatch_.wake), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&settle_.slicer), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&settle_.spinner), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timers_.clock), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), closed);
}

// Closes the handles the application left open on the runtime's own loop. Handles of other
// runtimes embedded in it are left to their teardowns (which end as the loop turns): closing them
// under a runtime that still uses them would break it. One whose runtime was not destroyed yet is
// a fatal usage error: its loop is about to go away.
void core::close_foreign_handles() noexcept {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (uv_is_closing(h)) return;
        if (core* other = owner_of(h)) {
          if (other->stage() < phase::detached)
            fatal("a uvrt::runtime embedded in another runtime's own loop must be destroyed before that runtime");
          return;
        }
        uv_close(h, nullptr);
      },
      nullptr);
}

void core::close_own_loop() noexcept {
  // The loop's memory goes away with the runtime, so nothing may stay linked into it.
  turn_scope scope(*this);
  while (uv_loop_close(loop) == UV_EBUSY && !inherited()) {
    close_foreign_handles();
    scope.turn(UV_RUN_ONCE);
  }
}

}  // namespace uvrt::detail
