// uvrt::future<T>: state, consumption, continuations, lifetime.
#include <atomic>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using test::tracked;

void empty_future_refuses_everything_but_valid(void**) {
  uvrt::future<int> f;
  assert_false(f.valid());
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)f.ready(); }), "empty");
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)f.get(); }), "empty");
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)f.cancel(); }), "empty");
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { std::move(f).then([](uvrt::future<int>) {}); }), "empty");
}

void get_before_ready_throws_and_keeps_the_state(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  auto f = rt.to_thread([&] {
    gate.wait();
    return 5;
  });
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)f.get(); }), "not settled");
  assert_true(f.valid());
  gate.count_down();
  assert_int_equal(rt.block_on(std::move(f)), 5);
}

void get_consumes_the_state(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([] { return 3; });
  rt.run();
  assert_true(f.ready());
  assert_int_equal(f.get(), 3);
  assert_false(f.valid());
  test::expect_throw<uvrt::usage_error>([&] { (void)f.get(); });
}

void move_only_and_void_results(void**) {
  uvrt::runtime rt;
  auto p = rt.block_on(rt.to_thread([] { return std::make_unique<int>(11); }));
  assert_non_null(p.get());
  assert_int_equal(*p, 11);
  std::atomic<int> ran{0};
  rt.block_on(rt.to_thread([&] { ++ran; }));
  assert_int_equal(ran.load(), 1);
}

void moving_a_future_moves_its_state(void**) {
  uvrt::runtime rt;
  auto a = rt.to_thread([] { return 8; });
  uvrt::future<int> b = std::move(a);
  assert_false(a.valid());
  assert_true(b.valid());
  uvrt::future<int> c;
  c = std::move(b);
  assert_false(b.valid());
  assert_int_equal(rt.block_on(std::move(c)), 8);
}

void then_runs_once_on_the_loop_thread_after_settling(void**) {
  uvrt::runtime rt;
  const auto loop_thread = std::this_thread::get_id();
  int calls = 0;
  int seen = 0;
  bool on_loop = false;
  rt.to_thread([] { return 21; }).then([&](uvrt::future<int> f) {
    ++calls;
    on_loop = std::this_thread::get_id() == loop_thread;
    assert_true(f.ready());
    seen = f.get() * 2;
  });
  assert_int_equal(calls, 0);  // not before the loop turned
  rt.run();
  assert_int_equal(calls, 1);
  assert_true(on_loop);
  assert_int_equal(seen, 42);
}

void then_on_a_settled_future_runs_at_once(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([] { return 4; });
  rt.run();
  int seen = 0;
  std::move(f).then([&](uvrt::future<int> g) { seen = g.get(); });
  assert_int_equal(seen, 4);
  assert_false(f.valid());
}

void a_future_outlives_its_runtime(void**) {
  tracked::reset();
  uvrt::future<tracked> f;
  {
    uvrt::runtime rt;
    f = rt.to_thread([] { return tracked(17); });
    rt.run();
  }
  assert_true(f.ready());
  assert_int_equal(*f.get().payload, 17);
  assert_int_equal(tracked::live(), 0);
}

void dropping_a_pending_future_detaches_the_job(void**) {
  tracked::reset();
  std::atomic<int> ran{0};
  {
    uvrt::runtime rt;
    std::latch gate(1);
    {
      auto f = rt.to_thread([&] {
        gate.wait();
        ++ran;
        return tracked(1);
      });
    }  // dropped while the job is blocked: it must still run, and its result must be freed
    gate.count_down();
    rt.run();
    assert_int_equal(ran.load(), 1);
  }
  assert_int_equal(tracked::live(), 0);
  assert_true(tracked::constructed.load() >= 1);
}

void ready_is_visible_from_another_thread(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([] { return 2; });
  rt.run();
  bool seen_ready = false;
  std::thread([&] { seen_ready = f.ready(); }).join();
  assert_true(seen_ready);
  assert_int_equal(f.get(), 2);
}

uvrt::task<int> await_by_reference(uvrt::future<int>& f) { co_return co_await f; }

// Dropping the future object a coroutine is awaiting hands its state to the coroutine, which
// still resumes with the outcome.
void an_awaited_future_may_be_dropped(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  auto owned = std::make_unique<uvrt::future<int>>(rt.to_thread([&] {
    gate.wait();
    return 7;
  }));
  // block_on parks the task on *owned before the loop turns, so this runs while it waits.
  rt.to_thread([] {}).then([&](uvrt::future<void>) {
    owned.reset();
    gate.count_down();
  });
  assert_int_equal(rt.block_on(await_by_reference(*owned)), 7);
  assert_null(owned.get());
}

// Moving the future object a coroutine is awaiting (here: a vector growing) re-points the
// coroutine at the new object.
void an_awaited_future_may_be_moved(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  std::vector<uvrt::future<int>> futures;
  futures.reserve(1);
  futures.push_back(rt.to_thread([&] {
    gate.wait();
    return 8;
  }));
  const auto* before = futures.data();
  rt.to_thread([] {}).then([&](uvrt::future<void>) {
    for (int i = 0; i < 64; ++i) futures.push_back(rt.to_thread([] { return 0; }));
    gate.count_down();
  });
  assert_int_equal(rt.block_on(await_by_reference(futures[0])), 8);
  assert_ptr_not_equal(futures.data(), before);  // the awaited element really moved
  assert_false(futures[0].valid());              // and the awaiter consumed it where it went
}

// A coroutine frame destroyed while it awaits a future that was moved elsewhere must not be
// resumed when the job settles later; the new owner gets the value.
void a_destroyed_waiter_is_forgotten_after_its_future_moved(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  uvrt::future<int> awaited = rt.to_thread([&] {
    gate.wait();
    return 1;
  });
  uvrt::future<int> new_owner;
  rt.to_thread([] {}).then([&](uvrt::future<void>) {
    new_owner = std::move(awaited);
    throw std::runtime_error("stop");  // ends block_on, which destroys the waiting task
  });
  test::expect_throw<std::runtime_error>([&] { rt.block_on(await_by_reference(awaited)); });
  gate.count_down();
  rt.run();
  assert_int_equal(new_owner.get(), 1);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_future_refuses_everything_but_valid),
      cmocka_unit_test(get_before_ready_throws_and_keeps_the_state),
      cmocka_unit_test(get_consumes_the_state),
      cmocka_unit_test(move_only_and_void_results),
      cmocka_unit_test(moving_a_future_moves_its_state),
      cmocka_unit_test(then_runs_once_on_the_loop_thread_after_settling),
      cmocka_unit_test(then_on_a_settled_future_runs_at_once),
      cmocka_unit_test(a_future_outlives_its_runtime),
      cmocka_unit_test(dropping_a_pending_future_detaches_the_job),
      cmocka_unit_test(ready_is_visible_from_another_thread),
      cmocka_unit_test(an_awaited_future_may_be_dropped),
      cmocka_unit_test(an_awaited_future_may_be_moved),
      cmocka_unit_test(a_destroyed_waiter_is_forgotten_after_its_future_moved),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
