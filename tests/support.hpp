// Shared by every test file: cmocka from C++, and helpers that keep assertions on the test thread.
//
// cmocka's state is thread-local and a failing assert longjmps: assert only on the test thread
// (in continuations, after block_on/run, or after joining), never inside a job running on the
// pool. Values leave workers through atomics, latches or the future itself.
//
// cmocka.h defines function-like macros with common names (fail, skip...), so every other header
// must be included before it: include this file last.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <uvrt/uvrt.hpp>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

namespace test {

// Runs `f`, which must throw E; returns the message so the caller can check what it names.
template <class E, class F>
std::string expect_throw(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    fail_msg("expected a different exception type; got one saying: %s", e.what());
  } catch (...) {
    fail_msg("expected a different exception type; got a non-std exception");
  }
  fail_msg("expected an exception; none was thrown");
  return {};
}

inline bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs `f` and describes how it ended, so that the outcome can be recorded where asserting is
// not wanted (inside a continuation, or while workers are held) and checked afterwards.
template <class F>
std::string outcome_of(F&& f) {
  try {
    f();
    return "returned";
  } catch (const uvrt::cancelled_error&) {
    return "cancelled";
  } catch (const uvrt::runtime_closed_error&) {
    return "runtime_closed";
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  } catch (...) {
    return "threw a non-std exception";
  }
}

// Blocks the calling worker until a stop is requested through `token`, without polling.
inline void wait_for_stop(std::stop_token token) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait(lock, token, [] { return false; });
}

// A result type that counts its instances, to prove that a result is destroyed exactly once.
// It owns heap memory so that a double destruction also shows up under AddressSanitizer.
struct tracked {
  static inline std::atomic<int> constructed{0};
  static inline std::atomic<int> destroyed{0};
  static void reset() {
    constructed = 0;
    destroyed = 0;
  }
  static int live() { return constructed.load() - destroyed.load(); }

  std::unique_ptr<int> payload;

  explicit tracked(int v) : payload(std::make_unique<int>(v)) { ++constructed; }
  tracked(tracked&& other) noexcept : payload(std::move(other.payload)) { ++constructed; }
  tracked& operator=(tracked&&) = delete;
  ~tracked() { ++destroyed; }
};

}  // namespace test

#define assert_contains(haystack, needle)                                                      \
  do {                                                                                         \
    const std::string uvrt_test_h_ = (haystack);                                               \
    if (!test::contains(uvrt_test_h_, (needle)))                                               \
      fail_msg("expected \"%s\" to contain \"%s\"", uvrt_test_h_.c_str(), (needle));           \
  } while (0)
