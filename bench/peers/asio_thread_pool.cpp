// Peer "asio": uvrt-bench's to_thread mode written with Boost.Asio, as an Asio user offloads
// blocking calls: an asio::thread_pool of T threads does the work, and an io_context running on
// the main thread plays the event loop.
//
// Each job is posted to the pool; when it finishes, the worker posts its result back to the
// io_context, whose handler adds it to the sum and posts the next job, so W jobs stay in flight
// as in uvrt-bench. A work guard keeps io_context::run from returning while every job is still
// on the pool. The pool creates its threads when constructed, before the clock starts, as uvrt's
// runtime starts libuv's pool before uvrt-bench's clock does.
#include <utility>  // Boost 1.74's Asio needs it under -std=c++20 and does not include it itself.

#include <boost/asio.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>

#include "peer_common.h"

namespace asio = boost::asio;

namespace {

constexpr const char* name = "asio";

class windowed_jobs {
 public:
  windowed_jobs(asio::io_context& loop, asio::thread_pool& pool, const peer_settings& s)
      : loop_(loop), pool_(pool), s_(s), guard_(asio::make_work_guard(loop)) {}

  // Runs on the loop thread only, like everything that touches the counters.
  void submit() {
    const std::uint64_t i = submitted_++;
    asio::post(pool_, [this, i] {
      peer_perform(&s_);
      const std::uint64_t value = peer_value_of(i);
      asio::post(loop_, [this, value] { receive(value); });
    });
  }

  std::uint64_t results() const noexcept { return results_; }
  std::uint64_t sum() const noexcept { return sum_; }

 private:
  void receive(std::uint64_t value) {
    sum_ += value;
    ++results_;
    if (submitted_ < s_.jobs) submit();
    if (results_ == s_.jobs) guard_.reset();
  }

  asio::io_context& loop_;
  asio::thread_pool& pool_;
  const peer_settings& s_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::uint64_t submitted_ = 0;
  std::uint64_t results_ = 0;
  std::uint64_t sum_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const peer_settings s = peer_parse_args(
      name, "Runs N jobs on a Boost.Asio thread_pool of T threads, W in flight, with each result posted back to an\n"
            "io_context on the main thread, and checks the results.",
      argc, argv);
  try {
    asio::io_context loop;
    asio::thread_pool pool(static_cast<std::size_t>(s.threads));
    windowed_jobs jobs(loop, pool, s);
    const std::uint64_t start = peer_now_ns();
    for (std::uint64_t k = 0; k < std::min(s.inflight, s.jobs); ++k) jobs.submit();
    loop.run();
    const std::uint64_t wall_ns = peer_now_ns() - start;
    pool.join();
    return peer_report(name, &s, nullptr, wall_ns, jobs.results(), jobs.sum());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}
