// Latency: calibration and snapshots. See latency.hpp for the design.
#include "latency.hpp"

#include <ctime>

namespace uvrt::detail {

#if defined(__x86_64__)
namespace {

struct clock_pair {
  std::uint64_t tsc;
  std::int64_t ns;  // CLOCK_MONOTONIC
};

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The monotonic clock between two TSC readings, paired with their midpoint. An interrupt or a
// preemption between them would skew the pair by as long as it lasted, and the first pair is kept
// for the life of the process: of a few tries, the one with the closest readings.
clock_pair read_pair() noexcept {
  clock_pair best{};
  std::uint64_t best_gap = UINT64_MAX;
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t before = ticks();
    const std::int64_t ns = monotonic_ns();
    const std::uint64_t after = ticks();
    if (after - before < best_gap) {
      best_gap = after - before;
      best = {before + (after - before) / 2, ns};
    }
  }
  return best;
}

const clock_pair& first_pair() noexcept {
  static const clock_pair first = read_pair();  // thread-safe initialisation
  return first;
}

double rate_since(const clock_pair& first, std::int64_t min_ns) noexcept {
  clock_pair now = read_pair();
  while (now.ns - first.ns < min_ns) now = read_pair();
  const std::uint64_t elapsed = now.tsc - first.tsc;
  if (elapsed == 0) return 1.0;  // a TSC that does not count: nothing to scale
  return static_cast<double>(now.ns - first.ns) / static_cast<double>(elapsed);
}

// 50 µs against the pairs' tens of ns: within a tenth of a percent, enough to time a slice.
double coarse_rate() noexcept {
  static const double rate = rate_since(first_pair(), 50'000);
  return rate;
}

}  // namespace

void start_clock() noexcept { (void)coarse_rate(); }

std::uint64_t ticks_for_ns(std::uint64_t ns) noexcept {
  return static_cast<std::uint64_t>(static_cast<double>(ns) / coarse_rate());
}

// A millisecond makes the pairs' own error (tens of ns) a few parts in 10^5.
double ns_per_tick() noexcept { return rate_since(first_pair(), 1'000'000); }
#else
void start_clock() noexcept {}
double ns_per_tick() noexcept { return 1.0; }
std::uint64_t ticks_for_ns(std::uint64_t ns) noexcept { return ns; }
#endif

void latency_recorder::add_to(latency_sum& s) const noexcept {
  // count first: its acquire makes the buckets and max read below at least as new (latency.hpp).
  s.count += count_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < latency_bucket_count; ++i)
    s.buckets[i] += buckets_[i].load(std::memory_order_relaxed);
  const std::uint64_t m = max_.load(std::memory_order_relaxed);
  if (m > s.max) s.max = m;
}

namespace {

std::chrono::nanoseconds to_ns(std::uint64_t t, double ns_per_tick) noexcept {
  const double ns = static_cast<double>(t) * ns_per_tick;
  if (!(ns > 0)) return std::chrono::nanoseconds{0};
  if (!(ns < 9.2e18)) return std::chrono::nanoseconds::max();
  // Rounded by hand: std::llround would make the static library need libm.
  return std::chrono::nanoseconds{static_cast<std::int64_t>(ns + 0.5)};
}

// ceil(n * pct / 100) without overflow.
std::uint64_t nearest_rank(std::uint64_t n, std::uint64_t pct) noexcept {
  return n / 100 * pct + (n % 100 * pct + 99) / 100;
}

}  // namespace

uvrt::latency to_latency(const latency_sum& s, double ns_per_tick) noexcept {
  uvrt::latency out;
  if (s.count == 0) return out;
  out.count = s.count;
  out.max = to_ns(s.max, ns_per_tick);

  // Ranks over the buckets as read: a snapshot taken while a writer runs may hold a few more
  // values in them than in count (latency.hpp).
  std::uint64_t total = 0;
  for (std::uint64_t b : s.buckets) total += b;
  if (total == 0) return out;

  const std::uint64_t pcts[] = {50, 90, 99};
  std::chrono::nanoseconds* dests[] = {&out.p50, &out.p90, &out.p99};
  std::uint64_t cumulative = 0;
  std::size_t i = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    const std::uint64_t rank = nearest_rank(total, pcts[k]);
    while (cumulative + s.buckets[i] < rank) cumulative += s.buckets[i++];
    std::uint64_t v = s.max;  // the last bucket has no midpoint: max is its best estimate
    if (i < latency_overflow_bucket) {
      const std::uint64_t low = latency_bucket_low(i);
      const std::uint64_t mid = low + (latency_bucket_low(i + 1) - low) / 2;
      if (mid < v) v = mid;
    }
    *dests[k] = to_ns(v, ns_per_tick);
  }
  return out;
}

}  // namespace uvrt::detail
