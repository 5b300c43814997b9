// Usage checks: what the C++ API refuses with usage_error or runtime_closed_error before it
// changes anything. The C API makes the same checks itself and answers with codes.
#include <string>

#include "core.hpp"

namespace uvrt::detail {

void throw_inherited(const char* what) {
  throw usage_error(std::string(what) +
                      ": the runtime was inherited through fork() and belongs to the parent process; "
                      "create a new runtime in the child (destroying the inherited one is allowed)");
}

void check_loop_thread(const core* c, const char* what) {
  check_not_inherited(c, what);
  if (std::this_thread::get_id() != c->owner)
    throw usage_error(std::string(what) +
                      ": called from a thread that does not run this runtime's loop; "
                      "use runtime::post to hand work to the loop thread");
}

void check_same_runtime(const core* c, const job_core* j, const char* what) {
  if (core_of(j) != c)
    throw usage_error(std::string(what) + ": the future belongs to another runtime, whose loop settles it");
}

void check_submit(const core* c) {
  check_loop_thread(c, "uvrt::to_thread");
  if (!c->takes_work()) throw runtime_closed_error("uvrt::to_thread: the runtime is shutting down and takes no new work");
}

}  // namespace uvrt::detail
