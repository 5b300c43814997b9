// Peer "asio": uvrt-bench's to_thread mode written with Boost.Asio, as an Asio user offloads
// blocking calls: an asio::thread_pool of T threads does the work, and an io_context running on
// the main thread plays the event loop.
//
// Each job is posted to the pool; when it finishes, the worker posts its result back to the
// io_context, whose handler adds it to the sum and posts the next job, so W jobs stay in flight
// as in uvrt-bench. A work guard keeps io_context::run from returning while every job is still
// on the pool. The pool creates its threads when constructed, before the clock starts, as uvrt's
// runtime starts libuv's pool before uvrt-bench's clock does.
//
// --compose timeout (issue 13) gives each job a deadline of PEER_COMPOSE_TIMEOUT_S (10 s), which
// never passes. Asio's own way to race an operation against a timer, `co_await (op ||
// timer.async_wait(use_awaitable))` with experimental::awaitable_operators, and
// experimental::parallel_group under it, came with Boost 1.77; Debian 12's Boost 1.74 has no
// boost/asio/experimental/ at all. So this peer does what those do underneath, the way Asio code
// before them does it: a steady_timer on the io_context is armed when the job is submitted and
// cancelled when its result arrives (its handler then runs with operation_aborted). Timers are
// reused through a free list, as the jobs in flight come and go. A deadline that passes fails
// the run. --compose when_all is not taken: Boost 1.74 has neither parallel_group nor the
// awaitable operators (bench/peers/README.md).
#include <utility>  // Boost 1.74's Asio needs it under -std=c++20 and does not include it itself.

#include <boost/asio.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <vector>

#include "peer_common.h"

namespace asio = boost::asio;

namespace {

constexpr const char* name = "asio";

class windowed_jobs {
 public:
  windowed_jobs(asio::io_context& loop, asio::thread_pool& pool, const peer_settings& s)
      : loop_(loop), pool_(pool), s_(s), guard_(asio::make_work_guard(loop)) {}

  // Runs on the loop thread only, like everything that touches the counters and the timers.
  void submit() {
    const std::uint64_t i = submitted_++;
    asio::steady_timer* deadline = nullptr;
    if (s_.compose == PEER_COMPOSE_TIMEOUT) {
      if (free_timers_.empty()) free_timers_.push_back(&timers_.emplace_back(loop_));
      deadline = free_timers_.back();
      free_timers_.pop_back();
      deadline->expires_after(std::chrono::seconds(PEER_COMPOSE_TIMEOUT_S));
      deadline->async_wait([this](const boost::system::error_code& ec) {
        if (ec != asio::error::operation_aborted) ++timed_out_;
      });
    }
    asio::post(pool_, [this, i, deadline] {
      peer_perform(&s_);
      const std::uint64_t value = peer_value_of(i);
      asio::post(loop_, [this, value, deadline] { receive(value, deadline); });
    });
  }

  std::uint64_t results() const noexcept { return results_; }
  std::uint64_t sum() const noexcept { return sum_; }
  std::uint64_t timed_out() const noexcept { return timed_out_; }

 private:
  void receive(std::uint64_t value, asio::steady_timer* deadline) {
    if (deadline) {
      deadline->cancel();
      free_timers_.push_back(deadline);  // first, so that the replacement can take it
    }
    sum_ += value;
    ++results_;
    if (submitted_ < s_.jobs) submit();
    if (results_ == s_.jobs) guard_.reset();
  }

  asio::io_context& loop_;
  asio::thread_pool& pool_;
  const peer_settings& s_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::deque<asio::steady_timer> timers_;  // a deque: growing it leaves the timers in use where they are
  std::vector<asio::steady_timer*> free_timers_;
  std::uint64_t submitted_ = 0;
  std::uint64_t results_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t timed_out_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const peer_settings s = peer_parse_args_composing(
      name, "Runs N jobs on a Boost.Asio thread_pool of T threads, W in flight, with each result posted back to an\n"
            "io_context on the main thread, and checks the results. --compose timeout arms a steady_timer for\n"
            "each job and cancels it when the result arrives (Boost 1.74 has no awaitable operators).",
      PEER_TAKES_TIMEOUT, argc, argv);
  try {
    asio::io_context loop;
    asio::thread_pool pool(static_cast<std::size_t>(s.threads));
    windowed_jobs jobs(loop, pool, s);
    const std::uint64_t start = peer_now_ns();
    for (std::uint64_t k = 0; k < std::min(s.inflight, s.jobs); ++k) jobs.submit();
    loop.run();
    const std::uint64_t wall_ns = peer_now_ns() - start;
    pool.join();
    if (jobs.timed_out() != 0) {
      std::fprintf(stderr, "%s: %llu jobs passed their %d s deadline\n", name,
                   static_cast<unsigned long long>(jobs.timed_out()), PEER_COMPOSE_TIMEOUT_S);
      return 1;
    }
    return peer_report(name, &s, nullptr, wall_ns, jobs.results(), jobs.sum());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}
