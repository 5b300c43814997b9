/// @file
/// How future<T>::cancel is asked to behave, and what it reports.
///
/// The modes and results are described for a to_thread job. For the other futures:
///   - a sleep: any mode settles it as cancelled at once; not_started.
///   - a spawned task: the operation the task waits on is cancelled with the same mode and the
///     task's co_await throws cancelled_error (spawn.hpp); stop_requested, or abandoned (the
///     future settled as cancelled at once, the task runs on).
///   - when_all, when_any, timeout: every pending input is cancelled with the same mode; the future
///     settles as cancelled once they have (wait: stop_requested) or at once (abandon: abandoned).
#pragma once

namespace uvrt {

/// How future<T>::cancel treats a job that is already running (a queued one never runs either way).
enum class cancel_mode {
  /// A queued job is removed from the pool's queue; a running job is asked to stop through its
  /// std::stop_token and its future settles when the callable returns, with whatever it returned
  /// or threw.
  wait,
  /// Like wait, but the future settles as cancelled at once (anyio's abandon_on_cancel). A job
  /// that is already running keeps running; its late result is destroyed when it arrives.
  abandon,
};

/// What future<T>::cancel did.
enum class cancel_result {
  /// The job was still queued and will never run; the future settles as cancelled.
  not_started,
  /// The job is running (or has just finished); a stop was requested through its token (a
  /// callable without one cannot be stopped and runs on) and the future will settle with the
  /// job's own outcome.
  stop_requested,
  /// The job is running; a stop was requested as above and the future is already settled as
  /// cancelled.
  abandoned,
  /// The future had already settled: nothing changed.
  already_settled,
};

/// A fixed English name for a cancel_result, for logs and test messages.
constexpr const char* to_string(cancel_result r) noexcept {
  switch (r) {
    case cancel_result::not_started: return "not_started";
    case cancel_result::stop_requested: return "stop_requested";
    case cancel_result::abandoned: return "abandoned";
    case cancel_result::already_settled: return "already_settled";
  }
  return "unknown";
}

}  // namespace uvrt
