// uvrt::runtime: construction, loop access and run(); the rest lives in the core.
#include "uvrt/runtime.hpp"

#include <stdexcept>

#include "core.hpp"
#include "latency.hpp"
#include "pool_slots.hpp"
#include "threadpool_start.hpp"

namespace uvrt {

runtime::runtime() : runtime(options{}) {}

runtime::runtime(options opts) : core_(detail::open_core(nullptr, opts)) {}

runtime::runtime(uv_loop_t* loop, options opts) : core_(nullptr) {
  if (!loop) throw std::invalid_argument("uvrt::runtime: the loop is null");
  core_ = detail::open_core(loop, opts);
}

namespace detail {

core* open_core(uv_loop_t* app_loop, const options& opts) {
  start_threadpool(opts.threadpool_size, opts.reserved_threads);
  start_clock();
  return new core(app_loop, pool_slots(), opts.max_queued);
}

}  // namespace detail

runtime::~runtime() { detail::core::close(core_); }

shutdown_result runtime::shutdown(std::chrono::nanoseconds timeout) { return core_->shutdown(timeout); }

uv_loop_t* runtime::loop() const noexcept { return core_->loop; }

void runtime::run() { detail::drive(core_, "uvrt::runtime::run", {}, nullptr, nullptr); }

runtime_stats runtime::stats() const {
  detail::check_loop_thread(core_, "uvrt::runtime::stats");
  return core_->stats();
}

}  // namespace uvrt
