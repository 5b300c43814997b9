// to_thread: what runs where, with which arguments, how many times (CPython's test_threads.py
// scenarios for asyncio.to_thread, in C++), and how many may wait (options::max_queued).
#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using test::pool_blocker;
using test::tracked;

int add(int a, int b) { return a + b; }

// Runs `f`, a to_thread call, and says how it went: "accepted", "queue_full_error: <message>", or
// another exception's message, so that the outcome can be checked once held jobs are released.
template <class F>
std::string refusal_of(F&& f) {
  try {
    f();
    return "accepted";
  } catch (const uvrt::queue_full_error& e) {
    return std::string("queue_full_error: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other exception: ") + e.what();
  }
}

void returns_the_value(void**) {
  uvrt::runtime rt;
  assert_int_equal(rt.block_on(rt.to_thread([] { return 42; })), 42);
}

void passes_arguments(void**) {
  uvrt::runtime rt;
  assert_int_equal(rt.block_on(rt.to_thread(add, 40, 2)), 42);
  auto joined = rt.to_thread([](std::string a, const std::string& b) { return a + b; }, std::string("to_"), "thread");
  assert_string_equal(rt.block_on(std::move(joined)).c_str(), "to_thread");
  // Move-only arguments are moved into the job and handed to the callable as rvalues.
  auto owned = rt.to_thread([](std::unique_ptr<int> p) { return *p + 1; }, std::make_unique<int>(6));
  assert_int_equal(rt.block_on(std::move(owned)), 7);
}

void arguments_are_copied_at_submission(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  std::string text = "before";
  auto f = rt.to_thread(
      [&gate](std::string s) {
        gate.wait();
        return s;
      },
      text);
  text = "after";  // the job holds its own copy, as std::thread's arguments do
  gate.count_down();
  assert_string_equal(rt.block_on(std::move(f)).c_str(), "before");
}

void member_functions_and_references(void**) {
  uvrt::runtime rt;
  struct counter {
    int n = 3;
    int times(int k) const { return n * k; }
  } c;
  assert_int_equal(rt.block_on(rt.to_thread(&counter::times, c, 5)), 15);
  // A callable returning a reference yields a copy: the future owns its value.
  static std::string shared = "kept";
  auto f = rt.to_thread([]() -> const std::string& { return shared; });
  std::string copy = rt.block_on(std::move(f));
  assert_string_equal(copy.c_str(), "kept");
  assert_ptr_not_equal(copy.data(), shared.data());
}

void called_exactly_once(void**) {
  uvrt::runtime rt;
  std::atomic<int> calls{0};
  auto f = rt.to_thread([&] { return ++calls; });
  rt.run();
  assert_int_equal(f.get(), 1);
  assert_int_equal(calls.load(), 1);
}

void concurrent_calls_all_complete(void**) {
  uvrt::runtime rt;
  std::vector<uvrt::future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(rt.to_thread([](int x) { return x * 10; }, i));
  for (int i = 0; i < 10; ++i) assert_int_equal(rt.block_on(std::move(futures[i])), i * 10);
}

void runs_concurrently_on_pool_threads(void**) {
  uvrt::runtime rt;
  // Two jobs that each wait for the other can only finish if they run at the same time, on
  // two different threads, neither of them the loop's.
  const int n = std::min(2, uvrt::threadpool_size());
  std::latch both(n);
  std::vector<uvrt::future<std::thread::id>> futures;
  for (int i = 0; i < n; ++i)
    futures.push_back(rt.to_thread([&] {
      both.arrive_and_wait();
      return std::this_thread::get_id();
    }));
  std::set<std::thread::id> ids;
  for (auto& f : futures) ids.insert(rt.block_on(std::move(f)));
  assert_int_equal(ids.size(), static_cast<size_t>(n));
  assert_true(ids.count(std::this_thread::get_id()) == 0);
}

void the_loop_serves_timers_while_work_runs(void**) {
  uvrt::runtime rt;
  // The job cannot finish until the loop's timer has fired three times: if to_thread blocked
  // the loop, the timer would never fire and the test would time out.
  std::latch ticks(3);
  uv_timer_t timer;
  uv_timer_init(rt.loop(), &timer);
  timer.data = &ticks;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        auto* latch = static_cast<std::latch*>(t->data);
        latch->count_down();
        if (latch->try_wait()) uv_timer_stop(t);  // counting below zero is undefined
      },
      1, 1);
  auto f = rt.to_thread([&] {
    ticks.wait();
    return 1;
  });
  assert_int_equal(rt.block_on(std::move(f)), 1);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  rt.run();  // let the close callback run before the timer leaves scope
  assert_true(ticks.try_wait());
}

void the_callable_is_destroyed_after_it_ran(void**) {
  uvrt::runtime rt;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  auto f = rt.to_thread([held = std::move(token)] { return *held; });
  rt.run();
  assert_true(watch.expired());  // the capture went with the callable, before settlement
  assert_int_equal(f.get(), 0);
}

void null_callables_are_refused(void**) {
  uvrt::runtime rt;
  int (*none)() = nullptr;
  assert_contains(test::expect_throw<std::invalid_argument>([&] { (void)rt.to_thread(none); }), "null");
  std::function<void()> empty;
  test::expect_throw<std::invalid_argument>([&] { (void)rt.to_thread(empty); });
  // Nothing was queued, so there is nothing to run.
  rt.run();
}

void a_stop_token_is_passed_when_accepted(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([](std::stop_token t, int x) { return t.stop_possible() && !t.stop_requested() ? x : -1; }, 7);
  assert_int_equal(rt.block_on(std::move(f)), 7);
}

void continuations_may_submit_more_work(void**) {
  uvrt::runtime rt;
  int result = 0;
  rt.to_thread([] { return 1; }).then([&](uvrt::future<int> f) {
    uvrt::to_thread([](int x) { return x + 1; }, f.get()).then([&](uvrt::future<int> g) { result = g.get(); });
  });
  rt.run();
  assert_int_equal(result, 2);
}

// options::max_queued = 3 with every pool thread held: three jobs may wait, the fourth to_thread
// throws queue_full_error and queues nothing: its callable is never invoked, and its argument,
// passed as an rvalue, is left with the caller, not moved from, and destroyed once. Once the
// held jobs finish and the queue drains, to_thread accepts jobs again.
void max_queued_refuses_jobs_past_the_bound(void**) {
  tracked::reset();
  test::watchdog dog("max_queued_refuses_jobs_past_the_bound");
  pool_blocker busy;
  std::atomic<int> refused_runs{0};
  std::vector<int> queued_values;
  std::string msg;
  bool arg_kept = false;
  int live_after_refusal = -1;
  int after = -1;
  bool held_ok = false;
  {
    uvrt::runtime rt(uvrt::options{.max_queued = 3});
    busy.fill(rt);
    std::vector<uvrt::future<int>> queued;
    for (int i = 0; i < 3; ++i) queued.push_back(rt.to_thread([i] { return 10 + i; }));
    {
      tracked arg(99);
      msg = refusal_of([&] {
        (void)rt.to_thread(
            [&refused_runs](tracked t) {
              ++refused_runs;
              return *t.payload;
            },
            std::move(arg));
      });
      arg_kept = arg.payload != nullptr;
      live_after_refusal = tracked::live();
    }
    held_ok = busy.drain(rt);
    for (auto& f : queued) queued_values.push_back(rt.block_on(std::move(f)));
    after = rt.block_on(rt.to_thread([] { return 42; }));
  }
  dog.disarm();
  assert_contains(msg, "queue_full_error: ");
  assert_contains(msg, "max_queued (3)");
  assert_true(arg_kept);
  assert_int_equal(live_after_refusal, 1);  // the caller's own argument, and no copy of it kept
  assert_int_equal(tracked::constructed.load(), 1);
  assert_int_equal(tracked::destroyed.load(), 1);
  assert_int_equal(refused_runs.load(), 0);
  assert_true(held_ok);
  assert_int_equal(queued_values.size(), 3);
  for (int i = 0; i < 3; ++i) assert_int_equal(queued_values[static_cast<std::size_t>(i)], 10 + i);
  assert_int_equal(after, 42);
}

// The free uvrt::to_thread is bounded the same way, inside a task.
void max_queued_bounds_the_free_to_thread_too(void**) {
  test::watchdog dog("max_queued_bounds_the_free_to_thread_too");
  pool_blocker busy;
  std::string first, second;
  bool held_ok = false;
  int value = -1;
  {
    uvrt::runtime rt(uvrt::options{.max_queued = 1});
    busy.fill(rt);
    uvrt::future<int> queued;
    rt.block_on([](uvrt::future<int>& queued, std::string& first, std::string& second) -> uvrt::task<void> {
      first = refusal_of([&] { queued = uvrt::to_thread([] { return 1; }); });
      second = refusal_of([] { (void)uvrt::to_thread([] { return 2; }); });
      co_return;
    }(queued, first, second));
    held_ok = busy.drain(rt);
    value = rt.block_on(std::move(queued));
  }
  dog.disarm();
  assert_string_equal(first.c_str(), "accepted");
  assert_contains(second, "queue_full_error: ");
  assert_true(held_ok);
  assert_int_equal(value, 1);
}

// Jobs waiting for a limiter's token count towards options::max_queued, whatever the limiter of
// the next job: with 2 allowed and two jobs waiting behind a token's holder, the next to_thread,
// with or without the limiter, throws queue_full_error and the limiter's line does not grow.
// Cancelling one of the waiting jobs makes room at once.
void jobs_waiting_for_a_limiter_count_towards_max_queued(void**) {
  test::watchdog dog("jobs_waiting_for_a_limiter_count_towards_max_queued");
  uvrt::limiter l(1);
  std::latch started(1);
  std::latch gate(1);
  std::string plain, limited;
  std::size_t waiting_after_refusals = 0;
  uvrt::cancel_result cancelled{};
  int accepted = -1, holder = -1, kept = -1;
  {
    uvrt::runtime rt(uvrt::options{.max_queued = 2});
    auto h = rt.to_thread(uvrt::job_options{&l}, [&] {
      started.count_down();
      gate.wait();
      return 1;
    });
    started.wait();  // running: it waits no more
    auto w1 = rt.to_thread(uvrt::job_options{&l}, [] { return 2; });
    auto w2 = rt.to_thread(uvrt::job_options{&l}, [] { return 3; });
    plain = refusal_of([&] { (void)rt.to_thread([] { return 4; }); });
    limited = refusal_of([&] { (void)rt.to_thread(uvrt::job_options{&l}, [] { return 5; }); });
    waiting_after_refusals = l.waiting();
    cancelled = w1.cancel();
    auto room = rt.to_thread([] { return 6; });
    accepted = rt.block_on(std::move(room));
    gate.count_down();
    holder = rt.block_on(std::move(h));
    kept = rt.block_on(std::move(w2));
  }
  dog.disarm();
  assert_contains(plain, "queue_full_error: ");
  assert_contains(limited, "queue_full_error: ");
  assert_int_equal(waiting_after_refusals, 2);
  assert_string_equal(uvrt::to_string(cancelled), "not_started");
  assert_int_equal(accepted, 6);
  assert_int_equal(holder, 1);
  assert_int_equal(kept, 3);
  assert_int_equal(l.borrowed(), 0);
  assert_int_equal(l.waiting(), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(returns_the_value),
      cmocka_unit_test(passes_arguments),
      cmocka_unit_test(arguments_are_copied_at_submission),
      cmocka_unit_test(member_functions_and_references),
      cmocka_unit_test(called_exactly_once),
      cmocka_unit_test(concurrent_calls_all_complete),
      cmocka_unit_test(runs_concurrently_on_pool_threads),
      cmocka_unit_test(the_loop_serves_timers_while_work_runs),
      cmocka_unit_test(the_callable_is_destroyed_after_it_ran),
      cmocka_unit_test(null_callables_are_refused),
      cmocka_unit_test(a_stop_token_is_passed_when_accepted),
      cmocka_unit_test(continuations_may_submit_more_work),
      cmocka_unit_test(max_queued_refuses_jobs_past_the_bound),
      cmocka_unit_test(max_queued_bounds_the_free_to_thread_too),
      cmocka_unit_test(jobs_waiting_for_a_limiter_count_towards_max_queued),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
