// Usage checks: what the C++ API refuses with usage_error or runtime_closed_error before it
// changes anything. The C API makes the same checks itself and answers with codes.
//
// Each check runs on every job (to_thread, co_await), so the test is kept apart from the throw:
// the refusals are cold functions of their own, and the checks need no stack frame to pass.
#include <string>

#include "core.hpp"

namespace uvrt::detail {

void throw_inherited(const char* what) {
  throw usage_error(std::string(what) +
                    ": the runtime was inherited through fork() and belongs to the parent process; "
                    "create a new runtime in the child (destroying the inherited one is allowed)");
}

namespace {

[[noreturn, gnu::cold, gnu::noinline]] void refuse_thread(const core* c, const char* what) {
  check_not_inherited(c, what);
  throw usage_error(std::string(what) +
                    ": called from a thread that does not run this runtime's loop; "
                    "use runtime::post to hand work to the loop thread");
}

[[noreturn, gnu::cold, gnu::noinline]] void refuse_closed() {
  throw runtime_closed_error("uvrt::to_thread: the runtime is shutting down and takes no new work");
}

[[noreturn, gnu::cold, gnu::noinline]] void refuse_full(std::size_t max_queued) {
  throw queue_full_error("uvrt::to_thread: options::max_queued (" + std::to_string(max_queued) +
                         ") jobs of this runtime are waiting already; nothing was queued");
}

[[noreturn, gnu::cold, gnu::noinline]] void refuse_park(const job_core* j, const char* what) {
  if (!j) throw usage_error(std::string(what) + ": the future is empty (moved from or consumed)");
  check_loop_thread(core_of(j), what);
  if (j->cont) throw usage_error(std::string(what) + ": the future is already awaited or has a continuation");
  throw usage_error(std::string(what) + ": the future belongs to another runtime, whose loop settles it");
}

}  // namespace

core* running_core(const char* what) {
  if (core* c = current_core()) return c;
  throw no_runtime_error(std::string(what) +
                         ": no runtime is running on this thread; call it inside runtime::block_on, runtime::run "
                         "or a uvrt::task, or call the runtime's member function");
}

void check_loop_thread(const core* c, const char* what) {
  if (c->inherited() || std::this_thread::get_id() != c->owner) [[unlikely]] refuse_thread(c, what);
}

void check_same_runtime(const core* c, const job_core* j, const char* what) {
  if (core_of(j) != c)
    throw usage_error(std::string(what) + ": the future belongs to another runtime, whose loop settles it");
}

void check_submit(core* c, const job_options& opts) {
  check_loop_thread(c, "uvrt::to_thread");
  if (!c->takes_work()) [[unlikely]] refuse_closed();
  if (c->max_queued != 0 && c->waiting_jobs() >= c->max_queued) [[unlikely]] refuse_full(c->max_queued);
  if (opts.limiter) c->tokens_.reserve_one();
}

// A continuation may wait on a pending job only on its runtime's loop thread, from that runtime
// (or from no runtime's frame: the application's own code on that thread), and only once.
void check_parkable(const job_core* j, const char* what) {
  const core* c = j ? core_of(j) : nullptr;
  const core* running = tls_top ? tls_top->owner : nullptr;
  if (!c || c->inherited() || std::this_thread::get_id() != c->owner || (running && running != c) || j->cont)
      [[unlikely]]
    refuse_park(j, what);
}

}  // namespace uvrt::detail
