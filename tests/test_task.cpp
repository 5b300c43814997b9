// uvrt::task<T>: laziness, values, composition, misuse.
#include <atomic>
#include <coroutine>
#include <memory>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

uvrt::task<int> constant(int v) { co_return v; }

uvrt::task<int> doubled_on_pool(int v) {
  co_return co_await uvrt::to_thread([](int x) { return 2 * x; }, v);
}

void block_on_returns_the_value(void**) {
  uvrt::runtime rt;
  assert_int_equal(rt.block_on(constant(9)), 9);
  assert_int_equal(rt.block_on(doubled_on_pool(21)), 42);
}

void a_task_is_lazy(void**) {
  uvrt::runtime rt;
  bool started = false;
  auto body = [&]() -> uvrt::task<void> {
    started = true;
    co_return;
  };
  {
    auto t = body();
    assert_false(started);  // creating the task ran nothing
  }
  assert_false(started);  // destroying it unstarted ran nothing either
  rt.block_on(body());
  assert_true(started);
}

void tasks_compose(void**) {
  uvrt::runtime rt;
  auto outer = []() -> uvrt::task<std::string> {
    int a = co_await doubled_on_pool(1);
    int b = co_await doubled_on_pool(a);
    auto s = co_await uvrt::to_thread([](int x) { return std::to_string(x); }, a + b);
    co_return s;
  };
  assert_string_equal(rt.block_on(outer()).c_str(), "6");
}

void move_only_task_result(void**) {
  uvrt::runtime rt;
  auto make = []() -> uvrt::task<std::unique_ptr<int>> {
    auto p = co_await uvrt::to_thread([] { return std::make_unique<int>(5); });
    co_return p;
  };
  auto p = rt.block_on(make());
  assert_int_equal(*p, 5);
}

void many_futures_in_flight_from_one_task(void**) {
  uvrt::runtime rt;
  auto fan_out = []() -> uvrt::task<long> {
    std::vector<uvrt::future<int>> futures;
    for (int i = 0; i < 100; ++i) futures.push_back(uvrt::to_thread([](int x) { return x * x; }, i));
    long sum = 0;
    for (auto& f : futures) sum += co_await f;
    co_return sum;
  };
  assert_int_equal(rt.block_on(fan_out()), 328350);  // sum of i*i for i < 100
}

// Symmetric transfer: in an optimised build the compiler turns each transfer into a tail call,
// so a chain far deeper than the stack could hold as nested calls completes. Unoptimised and
// sanitizer builds keep every frame, so there the chain is only as deep as the stack allows.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UVRT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UVRT_TEST_SANITIZED 1
#endif
#endif
#if defined(__OPTIMIZE__) && !defined(UVRT_TEST_SANITIZED)
constexpr int chain_depth = 200000;
#else
constexpr int chain_depth = 1000;
#endif

uvrt::task<int> depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await depth(n - 1);
}

void deep_chains_complete(void**) {
  uvrt::runtime rt;
  assert_int_equal(rt.block_on(depth(chain_depth)), chain_depth);
}

void a_task_runs_once(void**) {
  uvrt::runtime rt;
  auto t = constant(1);
  auto twice = [&]() -> uvrt::task<int> {
    int a = co_await std::move(t);
    int b = co_await std::move(t);  // already started: must throw, not resume a finished frame
    co_return a + b;
  };
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { rt.block_on(twice()); }), "already started");
}

void an_empty_task_is_refused(void**) {
  uvrt::runtime rt;
  uvrt::task<int> t;
  assert_false(t.valid());
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { rt.block_on(std::move(t)); }), "empty");
}

// An awaitable that never resumes its coroutine: nothing on the loop can ever complete it.
struct never {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

void block_on_reports_a_wait_nothing_can_complete(void**) {
  uvrt::runtime rt;
  auto stuck = []() -> uvrt::task<void> { co_await never{}; };
  // Without the check block_on would spin for ever on an idle loop.
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { rt.block_on(stuck()); }), "nothing pending");
  // The runtime is still usable afterwards.
  assert_int_equal(rt.block_on(constant(3)), 3);
}

void free_to_thread_finds_the_runtime_inside_a_task(void**) {
  uvrt::runtime rt;
  std::atomic<int> ran{0};
  rt.block_on([&]() -> uvrt::task<void> {
    co_await uvrt::to_thread([&] { ++ran; });
  }());
  assert_int_equal(ran.load(), 1);
  // Outside block_on and run nothing is running on this thread.
  test::expect_throw<uvrt::no_runtime_error>([] { (void)uvrt::to_thread([] {}); });
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(block_on_returns_the_value),
      cmocka_unit_test(a_task_is_lazy),
      cmocka_unit_test(tasks_compose),
      cmocka_unit_test(move_only_task_result),
      cmocka_unit_test(many_futures_in_flight_from_one_task),
      cmocka_unit_test(deep_chains_complete),
      cmocka_unit_test(a_task_runs_once),
      cmocka_unit_test(an_empty_task_is_refused),
      cmocka_unit_test(block_on_reports_a_wait_nothing_can_complete),
      cmocka_unit_test(free_to_thread_finds_the_runtime_inside_a_task),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
