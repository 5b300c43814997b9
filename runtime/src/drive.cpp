// Drive: frames, the per-loop guard, and run/block_on. See drive.hpp for the design.
#include "drive.hpp"

#include <cassert>
#include <string>

#include "core.hpp"

namespace uvrt::detail {

[[gnu::tls_model("initial-exec")]] constinit thread_local frame* tls_top = nullptr;

namespace {

// Read on every job: the initial-exec model, as for tls_top.
[[gnu::tls_model("initial-exec")]] thread_local core* tls_worker = nullptr;

}  // namespace

turn_scope::turn_scope(core& c, bool rethrows) noexcept : f_{c.loop, &c, tls_top, true, rethrows} {
  assert(!inside_loop(c.loop) && "uvrt never turns a loop it is inside");
  tls_top = &f_;
}

turn_scope::~turn_scope() { tls_top = f_.prev; }

int turn_scope::turn(uv_run_mode mode) noexcept {
  assert(tls_top == &f_ && "a loop is turned only from the top frame");
#ifndef NDEBUG
  for (const frame* f = f_.prev; f; f = f->prev) assert(f->loop != f_.loop && "one frame turns a loop");
#endif
  if (f_.owner->inherited()) return 0;  // a forked child never turns the parent's loop
  return uv_run(f_.loop, mode);
}

bool inside_loop(const uv_loop_t* loop) noexcept {
  for (const frame* f = tls_top; f; f = f->prev)
    if (f->loop == loop) return true;
  return false;
}

bool in_callback(const uv_loop_t* loop) noexcept {
  for (const frame* f = tls_top; f; f = f->prev)
    if (f->loop == loop && !f->turns) return true;
  return false;
}

bool held_here(const core* c) noexcept {
  for (const frame* f = tls_top; f; f = f->prev)
    if (f->turns && f->owner == c) return true;
  return false;
}

bool driven_here(const core* c) noexcept {
  for (const frame* f = tls_top; f; f = f->prev)
    if (f->rethrows && f->owner == c) return true;
  return false;
}

core* current_core() noexcept { return tls_top ? tls_top->owner : nullptr; }
core* worker_core() noexcept { return tls_worker; }
core* exchange_worker_core(core* c) noexcept { return std::exchange(tls_worker, c); }

void drive(core* c, const char* what, std::coroutine_handle<> start, bool (*done)(void*), void* ctx) {
  check_loop_thread(c, what);
  if (inside_loop(c->loop))
    throw usage_error(std::string(what) +
                      ": called from inside the loop (a task, a continuation, a posted callable or a done "
                      "callback of a runtime on the same loop), which cannot be re-entered; co_await the "
                      "future or task instead");
  std::exception_ptr error;
  {
    turn_scope scope(*c, true);
    try {
      if (start) start.resume();
      if (!done) {
        // run(): exactly uv_run's default mode, so uv_stop ends it as it would end uv_run.
        scope.turn(UV_RUN_DEFAULT);
        check_not_inherited(c, what);
      } else {
        while (!done(ctx) && !c->unhandled) {
          const int alive = scope.turn(UV_RUN_ONCE);
          check_not_inherited(c, what);
          if (alive != 0 || c->unhandled || done(ctx)) continue;
          throw usage_error(std::string(what) +
                            ": nothing pending on the loop can complete what it waits for "
                            "(is it waiting on another runtime's future?)");
        }
      }
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (!error) error = c->take_unhandled();
  // The runtime was destroyed from inside this loop: its teardown ends here, now that no uvrt
  // frame of it is on the stack.
  core::end_if_detached(c);
  if (error) std::rethrow_exception(error);
}

}  // namespace uvrt::detail
