// uvrt::runtime: construction, loop access and run(); the rest lives in the core.
#include "uvrt/runtime.hpp"

#include <stdexcept>

#include "core.hpp"
#include "threadpool_start.hpp"

namespace uvrt {

runtime::runtime() : runtime(options{}) {}

runtime::runtime(options opts) : core_(nullptr) {
  detail::start_threadpool(opts.threadpool_size);
  core_ = new detail::core(nullptr);
}

runtime::runtime(uv_loop_t* loop, options opts) : core_(nullptr) {
  if (!loop) throw std::invalid_argument("uvrt::runtime: the loop is null");
  detail::start_threadpool(opts.threadpool_size);
  core_ = new detail::core(loop);
}

runtime::~runtime() { delete core_; }

uv_loop_t* runtime::loop() const noexcept { return core_->loop; }

void runtime::run() { detail::drive(core_, "uvrt::runtime::run", {}, nullptr, nullptr); }

}  // namespace uvrt
