/// @file
/// What a runtime is doing: runtime::stats().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace uvrt {

/// The distribution of one duration over the jobs recorded so far. Percentiles come from a
/// histogram with 8 buckets per power of two, so each is within 7% of the exact value; max is
/// exact. All zero while count is 0.
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
struct latency {
  std::uint64_t count = 0;         ///< Jobs recorded.
  std::chrono::nanoseconds p50{0};  ///< Median.
  std::chrono::nanoseconds p90{0};  ///< 90th percentile.
  std::chrono::nanoseconds p99{0};  ///< 99th percentile.
  std::chrono::nanoseconds max{0};  ///< Longest, exact.
};

/// A snapshot of one runtime. Counters count since the runtime was created; gauges are the state
/// at the call. Every job submitted is, at any moment, exactly one of: waiting_for_limiter, queued,
/// running, or settled (an abandoned job is settled at once, though its work may still run).
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
struct runtime_stats {
  // Counters.
  std::uint64_t submitted = 0;  ///< jobs to_thread accepted
  std::uint64_t settled = 0;    ///< futures settled: with a value, an exception, or cancelled
  std::uint64_t cancelled = 0;  ///< of those settled: cancelled before they ran
  std::uint64_t abandoned = 0;  ///< of those settled: abandoned while running (cancel_mode::abandon, shutdown)
  // Gauges.
  std::size_t queued = 0;               ///< waiting for a pool thread
  std::size_t running = 0;              ///< taken by a pool thread, or back on the loop thread and
                                        ///< about to settle (returned, or cancelled before it ran)
  std::size_t waiting_for_limiter = 0;  ///< waiting for a token of their limiter
  /// Of the jobs that ran: from submission to starting on a pool thread (time spent waiting for a
  /// limiter included), and from starting to returning. Measured with the CPU's time stamp counter
  /// where there is one.
  latency wait;
  latency run;  ///< Of the jobs that ran: from starting on a pool thread to returning (see wait).
};

}  // namespace uvrt
