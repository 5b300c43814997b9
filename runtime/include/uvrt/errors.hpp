/// @file
/// Exceptions thrown by uvrt.
///
/// Every error uvrt reports is one of these types, so callers can tell a cancelled job from a
/// misuse of the API from a bad configuration without parsing messages. Exceptions thrown by a
/// job's own callable are never wrapped: they reach the caller with their original type.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

#include "export.h"

namespace uvrt {

/// What a cancelled future throws from get(), co_await and block_on.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN cancelled_error : public std::exception {
 public:
  /// "uvrt: the job was cancelled".
  const char* what() const noexcept override;
};

/// The free uvrt::to_thread (or uvrt::from_thread) was called where no runtime is running:
/// outside runtime::block_on, runtime::run and uvrt's own callbacks (asyncio's "no running event
/// loop").
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN no_runtime_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The API was used in a way its contract forbids: from the wrong thread, re-entering the loop,
/// reading a future that is not ready or has no state, awaiting a future twice. The message
/// names the call and what to do instead.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Work was submitted or posted to a runtime whose teardown has begun.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN runtime_closed_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// to_thread found as many of the runtime's jobs waiting as options::max_queued allows; nothing was
/// queued (tokio's try_send, a bounded queue's "full"). Retry later, or shed the request.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN queue_full_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// uvrt::timeout (or job_options::timeout) gave up: the operation did not settle in time. Its work
/// was cancelled, or asked to stop, and no result of it arrives after this.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN timeout_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// UV_THREADPOOL_SIZE or options::threadpool_size is not a whole number from 1 to 1024, or asks
/// for a size other than the one libuv's process-wide pool is already running with; or
/// options::reserved_threads is out of range (0 to the pool size - 1) or differs from the value
/// the process already uses.
///
/// @par Thread-safety
/// As for the standard exceptions: distinct objects: safe. Shared objects: safe to read (what()).
class UVRT_EXTERN threadpool_size_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace uvrt
