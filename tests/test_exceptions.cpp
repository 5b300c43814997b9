// Exceptions: whatever a job throws comes back with its type intact, through get(), co_await and
// block_on; nothing escapes into libuv; exceptions in continuations reach the driving call.
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <latch>
#include <stdexcept>
#include <string>
#include <system_error>

#include "support.hpp"

namespace {

struct not_a_std_exception {
  int code;
};

// Copying this argument fails, which must surface from to_thread itself, before anything queues.
struct throws_on_copy {
  throws_on_copy() = default;
  throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy failed"); }
};

// A result whose move constructor fails: the failure must arrive as the job's exception.
struct throws_on_move {
  throws_on_move() = default;
  throws_on_move(throws_on_move&&) { throw std::length_error("move failed"); }
};

void std_exception_type_and_message_survive_get(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([]() -> int { throw std::out_of_range("row 7 missing"); });
  rt.run();
  try {
    (void)f.get();
    fail_msg("get() returned instead of throwing");
  } catch (const std::out_of_range& e) {
    assert_string_equal(e.what(), "row 7 missing");
  }
}

void any_type_survives_block_on(void**) {
  uvrt::runtime rt;
  try {
    rt.block_on(rt.to_thread([] { throw 42; }));
    fail_msg("block_on returned instead of throwing");
  } catch (int e) {
    assert_int_equal(e, 42);
  }
  try {
    rt.block_on(rt.to_thread([]() -> std::string { throw not_a_std_exception{7}; }));
    fail_msg("block_on returned instead of throwing");
  } catch (const not_a_std_exception& e) {
    assert_int_equal(e.code, 7);
  }
}

void exceptions_cross_co_await_and_nested_tasks(void**) {
  uvrt::runtime rt;
  auto inner = []() -> uvrt::task<int> {
    co_return co_await uvrt::to_thread([]() -> int { throw std::invalid_argument("bad query"); });
  };
  auto outer = [&]() -> uvrt::task<std::string> {
    try {
      co_await inner();
    } catch (const std::invalid_argument& e) {
      co_return std::string("caught: ") + e.what();
    }
    co_return "not thrown";
  };
  assert_string_equal(rt.block_on(outer()).c_str(), "caught: bad query");
  // Uncaught, it leaves block_on with the same type.
  assert_string_equal(test::expect_throw<std::invalid_argument>([&] { rt.block_on(inner()); }).c_str(), "bad query");
}

void the_same_exception_object_is_rethrown(void**) {
  uvrt::runtime rt;
  // The loop must see the very object the worker threw, not a copy or a slice of it.
  std::atomic<const void*> thrown{nullptr};
  auto f = rt.to_thread([&] {
    try {
      throw std::system_error(std::make_error_code(std::errc::timed_out), "db");
    } catch (const std::system_error& e) {
      thrown = &e;
      throw;
    }
  });
  try {
    rt.block_on(std::move(f));
    fail_msg("block_on returned instead of throwing");
  } catch (const std::system_error& e) {
    assert_ptr_equal(static_cast<const void*>(&e), thrown.load());
    assert_true(e.code() == std::errc::timed_out);
  }
}

void a_failing_argument_copy_throws_at_submission(void**) {
  uvrt::runtime rt;
  std::atomic<int> ran{0};
  throws_on_copy arg;
  assert_string_equal(
      test::expect_throw<std::runtime_error>([&] { (void)rt.to_thread([&](throws_on_copy) { ++ran; }, arg); }).c_str(),
      "copy failed");
  rt.run();
  assert_int_equal(ran.load(), 0);
}

void a_failing_result_move_becomes_the_jobs_exception(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([] { return throws_on_move(); });
  assert_string_equal(test::expect_throw<std::length_error>([&] { rt.block_on(std::move(f)); }).c_str(), "move failed");
}

void a_throwing_continuation_reaches_run(void**) {
  uvrt::runtime rt;
  int later = 0;
  rt.to_thread([] { return 1; }).then([](uvrt::future<int>) { throw std::domain_error("in continuation"); });
  assert_string_equal(test::expect_throw<std::domain_error>([&] { rt.run(); }).c_str(), "in continuation");
  // The runtime stays usable afterwards.
  rt.to_thread([] { return 2; }).then([&](uvrt::future<int> f) { later = f.get(); });
  rt.run();
  assert_int_equal(later, 2);
}

void a_throwing_continuation_reaches_block_on(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  rt.to_thread([] {}).then([&](uvrt::future<void>) {
    gate.count_down();
    throw std::overflow_error("from then");
  });
  auto slow = rt.to_thread([&] {
    gate.wait();
    return 5;
  });
  assert_string_equal(test::expect_throw<std::overflow_error>([&] { rt.block_on(std::move(slow)); }).c_str(),
                      "from then");
}

// Runs `f` with stderr sent to a temporary file and returns what was written there.
template <class F>
std::string capture_stderr(F&& f) {
  std::fflush(stderr);
  FILE* sink = std::tmpfile();
  assert_non_null(sink);
  const int saved = dup(STDERR_FILENO);
  dup2(fileno(sink), STDERR_FILENO);
  f();
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string text;
  std::rewind(sink);
  for (int ch; (ch = std::fgetc(sink)) != EOF;) text.push_back(static_cast<char>(ch));
  std::fclose(sink);
  return text;
}

// An exception that can never be rethrown is not lost silently: it is printed on stderr.
void exceptions_nobody_can_rethrow_are_reported(void**) {
  const std::string report = capture_stderr([] {
    uvrt::runtime rt;
    uv_loop_t* loop = rt.loop();
    // The second job is submitted by the first continuation, so "first" is always thrown first.
    rt.to_thread([] {}).then([](uvrt::future<void>) {
      uvrt::to_thread([] {}).then([](uvrt::future<void>) { throw std::runtime_error("second"); });
      throw std::runtime_error("first");
    });
    // The application drives the loop itself, so nothing rethrows "first" before teardown, and
    // "second" arrives while "first" is still waiting.
    while (uv_run(loop, UV_RUN_ONCE) != 0) {
    }
  });
  assert_contains(report, "was dropped, because an earlier one is still waiting to be rethrown: second");
  assert_contains(report, "was never rethrown, because the runtime was destroyed first: first");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(std_exception_type_and_message_survive_get),
      cmocka_unit_test(any_type_survives_block_on),
      cmocka_unit_test(exceptions_cross_co_await_and_nested_tasks),
      cmocka_unit_test(the_same_exception_object_is_rethrown),
      cmocka_unit_test(a_failing_argument_copy_throws_at_submission),
      cmocka_unit_test(a_failing_result_move_becomes_the_jobs_exception),
      cmocka_unit_test(a_throwing_continuation_reaches_run),
      cmocka_unit_test(a_throwing_continuation_reaches_block_on),
      cmocka_unit_test(exceptions_nobody_can_rethrow_are_reported),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
