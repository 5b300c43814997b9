// Latency: the clock and the histograms behind runtime::stats() (uvrt::latency).
//
// The clock is the CPU's time stamp counter on x86-64 (one instruction, no system call: it is read
// twice a job) and steady_clock's nanoseconds elsewhere. Ticks become nanoseconds only when a
// snapshot is taken, by ns_per_tick(), calibrated against CLOCK_MONOTONIC without sleeping: from
// a first pair of readings taken by start_clock() (when a runtime is created) to a fresh pair
// taken at the call. The first stats() of a process may therefore spin for up to 1 ms.
// start_clock() itself spins 50 µs, once per process, for the coarse rate ticks_for_ns() uses to
// turn dispatch's time slices into ticks.
//
// A latency_recorder is a histogram of tick values: 0..15 exactly, then 8 buckets per power of
// two up to 2^48, and one bucket above. A value is reported as its bucket's midpoint, at most a
// sixteenth of a bucket's lower bound away from it (the 7% stats.hpp promises); max is exact.
//
// Threads:
//   - record() has one writer at a time: whoever hands the recorder to another writer orders the
//     handoff (a lock elsewhere). So it updates with a relaxed load and store, not a read-modify-
//     write: plain moves on x86, a few ns a value.
//   - add_to() may run on any thread at any time. It reads count first (acquire; record() stores
//     it last, with release), so the buckets and max it reads afterwards include at least the
//     values count counts, and maybe a few more: a snapshot may be a few values behind the writer,
//     never inconsistent enough to lose a counted value.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "uvrt/stats.hpp"

#if defined(__x86_64__)
#include <x86intrin.h>
#else
#include <chrono>
#endif

namespace uvrt::detail {

// The clock. Ticks are compared across threads (a job is stamped on one, started on another): this
// assumes an invariant TSC, synchronised across cores, as current x86-64 machines have.
inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
#endif
}

// Takes the first calibration pair and the coarse rate, once per process (later calls do
// nothing). Thread-safe.
void start_clock() noexcept;

// About `ns` nanoseconds in ticks, at the coarse rate (within a tenth of a percent).
std::uint64_t ticks_for_ns(std::uint64_t ns) noexcept;

// Nanoseconds per tick, from the first pair to a pair taken now; spins until 1 ms has passed
// since the first pair (taking it now if start_clock() was never called). 1.0 where ticks are
// nanoseconds. Thread-safe.
double ns_per_tick() noexcept;

// Bucket layout: 0..15 one value each, then 8 buckets per power of two from 2^4 to 2^47, and the
// last for every value from 2^48 up.
inline constexpr std::size_t latency_overflow_bucket = 16 + (48 - 4) * 8;  // 368
inline constexpr std::size_t latency_bucket_count = latency_overflow_bucket + 1;

// Branch-free: v < 16 is its own bucket (shift 0); above, the shift keeps v's top four bits,
// 8..15, and each power of two adds 8.
constexpr std::size_t latency_bucket_of(std::uint64_t v) noexcept {
  const unsigned shift = static_cast<unsigned>(std::bit_width(v | 15)) - 4;
  const std::uint64_t i = (v >> shift) + 8 * static_cast<std::uint64_t>(shift);
  return static_cast<std::size_t>(i < latency_overflow_bucket ? i : latency_overflow_bucket);
}

// The smallest value of bucket `i` (for the last, 2^48).
constexpr std::uint64_t latency_bucket_low(std::size_t i) noexcept {
  if (i < 16) return i;
  const std::size_t shift = i / 8 - 1;
  return static_cast<std::uint64_t>(i - 8 * shift) << shift;
}

// Recorders summed for a snapshot. Plain: it lives on the reading thread.
struct latency_sum {
  std::array<std::uint64_t, latency_bucket_count> buckets{};
  std::uint64_t count = 0;
  std::uint64_t max = 0;
};

class latency_recorder {
 public:
  latency_recorder() noexcept = default;
  latency_recorder(const latency_recorder&) = delete;
  latency_recorder& operator=(const latency_recorder&) = delete;

  // One writer at a time (see above).
  void record(std::uint64_t v) noexcept {
    std::atomic<std::uint64_t>& b = buckets_[latency_bucket_of(v)];
    b.store(b.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (v > max_.load(std::memory_order_relaxed)) max_.store(v, std::memory_order_relaxed);
    // Last, with release: a reader that sees this count sees the bucket and max above.
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Any thread, any time: adds this recorder's buckets, count and max (the larger) into `s`.
  void add_to(latency_sum& s) const noexcept;

 private:
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> max_{0};
  std::array<std::atomic<std::uint64_t>, latency_bucket_count> buckets_{};
};

// p50, p90 and p99 by nearest rank over the buckets, each its bucket's midpoint but no more than
// max (max itself in the last bucket, which has no midpoint), and max; ticks become nanoseconds
// at `ns_per_tick`, rounded. All zero when s.count is 0.
uvrt::latency to_latency(const latency_sum& s, double ns_per_tick) noexcept;

}  // namespace uvrt::detail
