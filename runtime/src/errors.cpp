// Out-of-line parts of uvrt's exceptions, and the throw helpers the headers share.
#include <string>

#include "uvrt/errors.hpp"
#include "uvrt/future.hpp"

namespace uvrt {

const char* cancelled_error::what() const noexcept { return "uvrt: the job was cancelled"; }

namespace detail {

void throw_no_state(const char* what) {
  throw usage_error(std::string(what) + ": the future is empty (default-constructed, moved from or consumed by get)");
}

void throw_not_ready(const char* what) {
  throw usage_error(std::string(what) +
                    ": the future has not settled yet; co_await it, attach then(), or use runtime::block_on");
}

}  // namespace detail

}  // namespace uvrt
