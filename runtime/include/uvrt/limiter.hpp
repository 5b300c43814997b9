/// @file
/// The capacity limiter, uvrt::limiter.
///
/// @class uvrt::limiter
/// uvrt::limiter: a capacity limiter shared by the jobs of one purpose (anyio's CapacityLimiter).
///
/// One pool serves every purpose of a program: request handlers, file responses, background work.
/// A limiter bounds one purpose: at most tokens() of the jobs submitted with it (job_options) run
/// at once, whichever runtimes they belong to. A job that finds no token waits inside uvrt, in
/// submission order, holding no pool thread; while it waits it can be cancelled (cancel_result::
/// not_started) and a runtime's teardown or shutdown cancels it like any queued job. A token is
/// borrowed when the job is handed to the pool and given back when its work returns (or when it is
/// cancelled before it ran), on the loop thread of the job's runtime; the next waiting job then
/// starts on its own runtime's loop.
///
/// @par Thread-safety
/// Every member function may be called from any thread, concurrently; one limiter
/// may serve runtimes on several threads and then bounds them all together. The limiter must
/// outlive every job submitted with it: destroying it while jobs hold or wait for its tokens is a
/// fatal usage error (the message is printed and the process aborts), as nothing could settle them
/// correctly afterwards.
#pragma once

#include <cstddef>

#include "export.h"

namespace uvrt {

namespace detail {
struct limiter_state;
}  // namespace detail

class UVRT_EXTERN limiter {
 public:
  /// A limiter of `tokens` tokens. 0 throws std::invalid_argument: no job could ever run.
  explicit limiter(std::size_t tokens);
  /// Destroys the limiter, which no job may hold or wait for any more (see the class's
  /// thread-safety: otherwise the process aborts).
  ~limiter();

  limiter(const limiter&) = delete;             ///< Not copyable: jobs refer to it.
  limiter& operator=(const limiter&) = delete;  ///< Not copyable: jobs refer to it.

  /// The number of tokens: how many of the limiter's jobs may run at once.
  std::size_t tokens() const noexcept;
  /// Changes the number of tokens. Growing starts waiting jobs at once; shrinking takes effect as
  /// jobs give their tokens back (no running job is interrupted). 0 throws std::invalid_argument.
  void set_tokens(std::size_t tokens);
  /// Tokens held now, by jobs handed to the pool and not yet returned. May exceed tokens() for a
  /// while after set_tokens shrank it.
  std::size_t borrowed() const noexcept;
  /// Jobs waiting for a token.
  std::size_t waiting() const noexcept;

  /// @cond INTERNAL
  detail::limiter_state* state() const noexcept { return state_; }
  /// @endcond

 private:
  detail::limiter_state* state_;
};

}  // namespace uvrt
