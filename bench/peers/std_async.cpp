// Peer "std_async": uvrt-bench's to_thread mode written with std::async(std::launch::async), the
// standard library's own way to run a call on another thread and get its result back.
//
// The main thread keeps a window of W futures, as uvrt-bench keeps W uvrt::futures: it waits for
// the oldest, adds its result to the sum and launches the next job in its place. std::async has
// no pool: every job gets a thread of its own, created for it and joined when its result is
// taken, so up to W threads exist at once and --threads bounds nothing (it is accepted so that
// one command line runs every peer). With a large window the process runs out of threads; the
// peer then says so and exits 1 instead of letting the std::system_error abort it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <future>
#include <system_error>
#include <vector>

#include "peer_common.h"

namespace {

constexpr const char* name = "std_async";

std::future<std::uint64_t> launch(const peer_settings& s, std::uint64_t i) {
  return std::async(std::launch::async, [&s, i] {
    peer_perform(&s);
    return peer_value_of(i);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const peer_settings s = peer_parse_args(
      name, "Runs N jobs with std::async(std::launch::async), W futures in flight, and checks their results.\n"
            "std::async starts a thread for each job, so W threads run at once; --threads is accepted and ignored.",
      argc, argv);
  std::uint64_t submitted = 0;
  std::uint64_t results = 0;
  std::uint64_t sum = 0;
  try {
    std::vector<std::future<std::uint64_t>> window(std::min(s.inflight, s.jobs));
    const std::uint64_t start = peer_now_ns();
    for (auto& slot : window) slot = launch(s, submitted++);
    for (std::uint64_t done = 0; done < s.jobs; ++done) {
      auto& slot = window[done % window.size()];
      sum += slot.get();
      ++results;
      if (submitted < s.jobs) slot = launch(s, submitted++);
    }
    const std::uint64_t wall_ns = peer_now_ns() - start;
    return peer_report(name, &s, "per-job", wall_ns, results, sum);
  } catch (const std::system_error& e) {
    // `submitted` counts the job that failed to start too. Leaving the try block destroyed the
    // window, which joined the threads that did start, so the counts below are final.
    std::fprintf(stderr,
                 "%s: std::async could not start a thread for job %llu with %llu threads already running: %s\n"
                 "%s: std::async starts one thread for each job; lower --inflight\n",
                 name, static_cast<unsigned long long>(submitted - 1),
                 static_cast<unsigned long long>(submitted - 1 - results), e.what(), name);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}
