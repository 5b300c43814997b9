// uvrt_limiter_*: uvrt::limiter from C. Any thread may call these; the limiter's own lock orders
// them with the runtimes that take and give back its tokens (runtime/src/tokens.hpp).
#include <memory>
#include <mutex>
#include <new>

#include "handles.hpp"
#include "tokens.hpp"

extern "C" {

int uvrt_limiter_create(uvrt_limiter_t** limiter, size_t tokens) {
  if (!limiter || tokens == 0) return UVRT_EINVAL;
  try {
    *limiter = new uvrt_limiter_s{uvrt::limiter(tokens)};
    return 0;
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
}

int uvrt_limiter_destroy(uvrt_limiter_t* limiter) {
  if (!limiter) return UVRT_EINVAL;
  // The C++ destructor ends the process while jobs hold or wait for a token; the C API refuses
  // instead. Once nothing is borrowed and nobody waits, only a new submission with this limiter
  // could change that before the destruction, and uvrt.h rules that out.
  {
    uvrt::detail::limiter_state& state = *limiter->lim.state();
    std::lock_guard lock(state.mutex);
    if (state.borrowed != 0 || state.waiting != 0) return UVRT_EBUSY;
  }
  delete limiter;
  return 0;
}

int uvrt_limiter_set_tokens(uvrt_limiter_t* limiter, size_t tokens) {
  if (!limiter || tokens == 0) return UVRT_EINVAL;
  try {
    limiter->lim.set_tokens(tokens);
    return 0;
  } catch (...) {
    return uvrt::c_api::error_of_current_exception();
  }
}

size_t uvrt_limiter_tokens(const uvrt_limiter_t* limiter) { return limiter ? limiter->lim.tokens() : 0; }

size_t uvrt_limiter_borrowed(const uvrt_limiter_t* limiter) { return limiter ? limiter->lim.borrowed() : 0; }

size_t uvrt_limiter_waiting(const uvrt_limiter_t* limiter) { return limiter ? limiter->lim.waiting() : 0; }

}  // extern "C"
