// uvrt::runtime: construction, loop access and run(); the rest lives in the core.
#include "uvrt/runtime.hpp"

#include <stdexcept>

#include "core.hpp"
#include "threadpool_start.hpp"

namespace uvrt {

runtime::runtime() : runtime(options{}) {}

runtime::runtime(options opts) : core_(detail::open_core(nullptr, opts.threadpool_size)) {}

runtime::runtime(uv_loop_t* loop, options opts) : core_(nullptr) {
  if (!loop) throw std::invalid_argument("uvrt::runtime: the loop is null");
  core_ = detail::open_core(loop, opts.threadpool_size);
}

namespace detail {

core* open_core(uv_loop_t* app_loop, int threadpool_size) {
  const int pool_size = start_threadpool(threadpool_size);
  return new core(app_loop, pool_size);
}

}  // namespace detail

runtime::~runtime() { detail::core::close(core_); }

shutdown_result runtime::shutdown(std::chrono::nanoseconds timeout) { return core_->shutdown(timeout); }

uv_loop_t* runtime::loop() const noexcept { return core_->loop; }

void runtime::run() { detail::drive(core_, "uvrt::runtime::run", {}, nullptr, nullptr); }

}  // namespace uvrt
