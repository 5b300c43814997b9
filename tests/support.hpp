// Shared by every test file: cmocka from C++, and helpers that keep assertions on the test thread.
//
// cmocka's state is thread-local and a failing assert longjmps: assert only on the test thread
// (in continuations, after block_on/run, or after joining), never inside a job running on the
// pool. Values leave workers through atomics, latches or the future itself.
//
// cmocka.h defines function-like macros with common names (fail, skip...), so every other header
// must be included before it: include this file last.
#pragma once

#include <exception>
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

}  // namespace test

#define assert_contains(haystack, needle)                                                      \
  do {                                                                                         \
    const std::string uvrt_test_h_ = (haystack);                                               \
    if (!test::contains(uvrt_test_h_, (needle)))                                               \
      fail_msg("expected \"%s\" to contain \"%s\"", uvrt_test_h_.c_str(), (needle));           \
  } while (0)
