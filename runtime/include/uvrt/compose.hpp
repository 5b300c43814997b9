/// @file
/// when_all and when_any: waiting for several futures at once (asyncio's gather and wait, Asio's
/// awaitable operators, tokio's join! and select!).
///
/// Both take their input futures by value and return a new future; they are called on the loop
/// thread of the inputs' runtime (usage_error elsewhere, for an empty input, or for pending inputs
/// of different runtimes or of a runtime other than the one running on this thread). Results of
/// void futures are std::monostate. Neither resumes anything from inside the call: an outcome known
/// at once (every input settled) is there when the call returns.
///
/// Thread-safety: as for future (future.hpp): loop thread of the inputs' runtime.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "detail/watch.hpp"
#include "future.hpp"

namespace uvrt {

/// What a future<T> carries inside a tuple, a vector or an any_result: T, or std::monostate for void.
template <class T>
using value_of = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// when_any's outcome: which input settled first, and its value.
///
/// @par Thread-safety
/// Plain data: distinct objects: safe. Shared objects: unsafe.
template <class T>
struct any_result {
  std::size_t index;   ///< The position of the first input to settle.
  value_of<T> value;  ///< Its value.
};

namespace detail {

template <class T>
value_of<T> value_from(job_core* j) {
  future<T> f = adopt_future<T>(j);
  if constexpr (std::is_void_v<T>) {
    f.get();
    return {};
  } else {
    return f.get();
  }
}

// when_all's operation: `Build` makes the result from the inputs once all have settled with values.
template <class R, class Build>
class gather_op final : public watch_op {
 public:
  gather_op(job_core* cell, job_core* const* jobs, std::size_t n) : watch_op(cell, jobs, n), unsettled_(n) {}

  cancel_result cancel(cancel_mode mode) override { return cancel_with_inputs(mode); }

  bool start() noexcept {
    if (size() == 0) return finish();
    return watch();
  }

 private:
  bool settled(std::size_t i) noexcept override {
    if (failed(i) && !failure_ && !cancelled_) {
      // The first failure: the others are cancelled and awaited, then it is the outcome.
      failure_ = failure_of(i);
      cancel_inputs(cancel_mode::wait);
    }
    if (--unsettled_ != 0) return false;
    return finish();
  }

  bool finish() noexcept {
    if (cancelled_) {
      settle_cancelled(cell_);
    } else if (failure_) {
      settle_failure(cell_, failure_);
    } else {
      try {
        settle_value<R>(cell_, Build{}(*this));
      } catch (...) {
        settle_error(cell_, std::current_exception());
      }
    }
    retire();
    return true;
  }

  friend Build;
  std::size_t unsettled_;
  std::exception_ptr failure_;
};

template <class... T>
struct build_tuple {
  template <class Op>
  std::tuple<value_of<T>...> operator()(Op& op) const {
    return make(op, std::index_sequence_for<T...>{});
  }
  template <class Op, std::size_t... I>
  static std::tuple<value_of<T>...> make(Op& op, std::index_sequence<I...>) {
    return std::tuple<value_of<T>...>{value_from<T>(op.take(I))...};
  }
};

template <class T>
struct build_vector {
  template <class Op>
  std::vector<value_of<T>> operator()(Op& op) const {
    std::vector<value_of<T>> values;
    values.reserve(op.size());
    for (std::size_t i = 0; i < op.size(); ++i) values.push_back(value_from<T>(op.take(i)));
    return values;
  }
};

// The inputs' futures must hand their references over (future_access::take) before start().
template <class R, class Build>
gather_op<R, Build>* gather(job_core* const* jobs, std::size_t n, const char* what) {
  core* c = check_inputs(jobs, n, what);
  return make_op<R, gather_op<R, Build>>(c, jobs, n);
}

template <class T>
class race_op final : public watch_op {
 public:
  race_op(job_core* cell, job_core* const* jobs, std::size_t n) : watch_op(cell, jobs, n) {}

  cancel_result cancel(cancel_mode mode) override { return cancel_with_inputs(mode); }

  bool start() noexcept { return watch(); }

 private:
  bool settled(std::size_t i) noexcept override {
    std::exception_ptr failure = failed(i) ? failure_of(i) : nullptr;
    job_core* winner = take(i);
    // The losers first, so that they have been told to stop when the result's waiter runs: settled
    // as cancelled at once, their late results destroyed when they arrive.
    cancel_inputs(cancel_mode::abandon);
    if (cancelled_ || failure) {
      if (cancelled_) settle_cancelled(cell_);
      else settle_failure(cell_, std::move(failure));
      winner->vt->release(winner);
    } else {
      try {
        settle_value<any_result<T>>(cell_, any_result<T>{i, value_from<T>(winner)});
      } catch (...) {
        settle_error(cell_, std::current_exception());
      }
    }
    retire();
    return true;
  }
};

}  // namespace detail

/// Settles when every input has settled, with their values in argument order. On the first failure
/// (an exception, or a cancellation) the other inputs are cancelled (cancel_mode::wait) and awaited,
/// and then that failure is the outcome. Cancelling the result cancels every input with the same
/// mode; it then settles as cancelled (once the inputs have, for cancel_mode::wait).
template <class... T>
future<std::tuple<value_of<T>...>> when_all(future<T>... fs) {
  detail::job_core* jobs[] = {detail::future_access::job(fs)..., nullptr};
  using R = std::tuple<value_of<T>...>;
  auto* op = detail::gather<R, detail::build_tuple<T...>>(jobs, sizeof...(T), "uvrt::when_all");
  (detail::future_access::take(fs), ...);  // their references now belong to the operation
  future<R> result = detail::adopt_future<R>(op->cell());
  op->start();
  return result;
}

/// As above for a vector of futures: a vector of values. An empty vector gives an empty vector at once.
template <class T>
future<std::vector<value_of<T>>> when_all(std::vector<future<T>> fs) {
  std::vector<detail::job_core*> jobs;
  jobs.reserve(fs.size());
  for (auto& f : fs) jobs.push_back(detail::future_access::job(f));
  using R = std::vector<value_of<T>>;
  auto* op = detail::gather<R, detail::build_vector<T>>(jobs.data(), jobs.size(), "uvrt::when_all");
  for (auto& f : fs) detail::future_access::take(f);
  future<R> result = detail::adopt_future<R>(op->cell());
  op->start();
  return result;
}

/// Settles with the first input to settle: its index and value, or its failure rethrown. The other
/// inputs are cancelled with cancel_mode::abandon: their futures settle as cancelled at once, and
/// results that arrive later are destroyed. Cancelling the result cancels every input with the same
/// mode; it then settles as cancelled. An empty vector throws std::invalid_argument.
template <class T>
future<any_result<T>> when_any(std::vector<future<T>> fs) {
  if (fs.empty()) throw std::invalid_argument("uvrt::when_any: no futures to wait for");
  std::vector<detail::job_core*> jobs;
  jobs.reserve(fs.size());
  for (auto& f : fs) jobs.push_back(detail::future_access::job(f));
  detail::core* c = detail::check_inputs(jobs.data(), jobs.size(), "uvrt::when_any");
  auto* op = detail::make_op<any_result<T>, detail::race_op<T>>(c, jobs.data(), jobs.size());
  for (auto& f : fs) detail::future_access::take(f);
  future<any_result<T>> result = detail::adopt_future<any_result<T>>(op->cell());
  op->start();
  return result;
}

}  // namespace uvrt
