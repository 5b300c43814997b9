// Thread rules of uvrt: which thread may call what, where jobs and continuations run, how other
// threads reach the loop (post, from_thread), and how runtimes on different threads coexist.
//
// Values computed on other threads are carried out through atomics, latches, plain variables read
// after join, or the future itself; every assertion runs on the test thread once the other threads
// are done, because cmocka's state is thread-local.
#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

// An exception type of the test's own, so a rethrow with its type intact can be told apart from
// anything uvrt throws.
struct app_error : std::runtime_error {
  int code;
  app_error(const char* what, int c) : std::runtime_error(what), code(c) {}
};

// What `f` threw, recorded on whatever thread runs it: `kind` says whether it threw nothing, an E
// or something else, so that the test thread can assert on it afterwards.
struct outcome {
  enum kind_t { none, expected, other } kind = none;
  std::string message;
};

template <class E, class F>
outcome capture(F&& f) {
  outcome o;
  try {
    f();
  } catch (const E& e) {
    o.kind = outcome::expected;
    o.message = e.what();
  } catch (const std::exception& e) {
    o.kind = outcome::other;
    o.message = e.what();
  } catch (...) {
    o.kind = outcome::other;
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// 1. runtime::to_thread belongs to the loop thread.

void to_thread_from_foreign_thread_throws_usage_error_and_queues_nothing(void**) {
  uvrt::runtime rt;
  std::atomic<bool> ran{false};
  outcome o;
  std::thread foreign([&] {
    o = capture<uvrt::usage_error>([&] { (void)rt.to_thread([&] { ran = true; }); });
  });
  foreign.join();
  // Were anything queued, run() would wait for it and the callable would set the flag.
  rt.run();
  assert_int_equal(o.kind, outcome::expected);
  assert_contains(o.message, "post");
  assert_false(ran.load());
}

// A refused call throws before it touches the callable or the arguments, so what the caller
// moved in is still the caller's.
void a_refused_to_thread_leaves_moved_arguments_alone(void**) {
  uvrt::runtime rt;
  std::vector<int> data(1000, 1);
  auto owned = std::make_unique<int>(42);
  outcome o;
  std::thread foreign([&] {
    o = capture<uvrt::usage_error>([&] {
      (void)rt.to_thread([](std::vector<int> d, std::unique_ptr<int> p) { return d.size() + static_cast<size_t>(*p); },
                         std::move(data), std::move(owned));
    });
  });
  foreign.join();
  assert_int_equal(o.kind, outcome::expected);
  assert_int_equal(data.size(), 1000);
  assert_non_null(owned.get());
  assert_int_equal(*owned, 42);
}

// ---------------------------------------------------------------------------------------------
// 2. The free to_thread needs a runtime running on the calling thread.

void free_to_thread_on_plain_thread_throws_no_runtime_error(void**) {
  outcome o;
  std::thread plain([&] { o = capture<uvrt::no_runtime_error>([] { (void)uvrt::to_thread([] { return 1; }); }); });
  plain.join();
  assert_int_equal(o.kind, outcome::expected);
  assert_contains(o.message, "no runtime");
}

void free_to_thread_on_owner_thread_outside_the_loop_throws_no_runtime_error(void**) {
  // Owning a runtime is not enough: the free function only finds one that is driving the loop.
  uvrt::runtime rt;
  test::expect_throw<uvrt::no_runtime_error>([] { (void)uvrt::to_thread([] { return 1; }); });
}

void free_to_thread_inside_a_job_throws_no_runtime_error(void**) {
  uvrt::runtime rt;
  // The job reports what it caught through its result.
  auto caught = rt.to_thread([] {
    try {
      (void)uvrt::to_thread([] { return 1; });
      return false;
    } catch (const uvrt::no_runtime_error&) {
      return true;
    }
  });
  assert_true(rt.block_on(std::move(caught)));

  // Left uncaught, the error reaches the caller through the future with its type intact.
  auto escaped = rt.to_thread([] { return uvrt::to_thread([] { return 1; }).valid(); });
  test::expect_throw<uvrt::no_runtime_error>([&] { (void)rt.block_on(std::move(escaped)); });
}

// ---------------------------------------------------------------------------------------------
// 3. from_thread: a job calls back into its runtime's loop thread.

void from_thread_returns_value_computed_on_the_loop_thread(void**) {
  uvrt::runtime rt;
  const auto loop_id = std::this_thread::get_id();
  struct seen {
    std::thread::id thread;
    int value;
  };
  auto fut = rt.to_thread([] {
    return uvrt::from_thread([](int a, int b) { return seen{std::this_thread::get_id(), a * b}; }, 6, 7);
  });
  seen s = rt.block_on(std::move(fut));
  assert_int_equal(s.value, 42);
  assert_true(s.thread == loop_id);
}

void from_thread_rethrows_the_callables_exception_with_its_type(void**) {
  uvrt::runtime rt;
  auto fut = rt.to_thread([] { return uvrt::from_thread([]() -> int { throw app_error("from the loop", 7); }); });
  int code = 0;
  std::string message = test::expect_throw<app_error>([&] {
    try {
      (void)rt.block_on(std::move(fut));
    } catch (const app_error& e) {
      code = e.code;
      throw;
    }
  });
  assert_int_equal(code, 7);
  assert_contains(message, "from the loop");
}

void from_thread_runs_a_void_callable_on_the_loop_thread(void**) {
  uvrt::runtime rt;
  const auto loop_id = std::this_thread::get_id();
  // Written on the loop thread by the callable and read there after block_on: no race.
  std::optional<std::thread::id> ran_on;
  auto fut = rt.to_thread([&] {
    uvrt::from_thread([&] { ran_on = std::this_thread::get_id(); });
    // Reaching this line means from_thread waited for the callable to finish.
    return 1;
  });
  assert_int_equal(rt.block_on(std::move(fut)), 1);
  assert_true(ran_on.has_value());
  assert_true(*ran_on == loop_id);
}

uvrt::task<int> call_from_thread_in_a_task() {
  co_return uvrt::from_thread([] { return 1; });
}

void from_thread_on_the_loop_thread_throws_usage_error(void**) {
  uvrt::runtime rt;
  // Inside a task the calling thread is the loop thread.
  std::string in_task = test::expect_throw<uvrt::usage_error>([&] { (void)rt.block_on(call_from_thread_in_a_task()); });
  assert_contains(in_task, "loop thread");

  // Inside a then() callback too; the callback records what it caught for the test to check.
  outcome in_then;
  bool continuation_ran = false;
  rt.to_thread([] { return 1; }).then([&](uvrt::future<int> f) {
    continuation_ran = true;
    (void)f.get();
    in_then = capture<uvrt::usage_error>([] { (void)uvrt::from_thread([] { return 1; }); });
  });
  rt.run();
  assert_true(continuation_ran);
  assert_int_equal(in_then.kind, outcome::expected);
  assert_contains(in_then.message, "loop thread");
}

void from_thread_on_a_plain_thread_throws_no_runtime_error(void**) {
  uvrt::runtime rt;  // A runtime exists in the process, but the plain thread runs none of its jobs.
  outcome o;
  std::thread plain([&] { o = capture<uvrt::no_runtime_error>([] { (void)uvrt::from_thread([] { return 1; }); }); });
  plain.join();
  assert_int_equal(o.kind, outcome::expected);
}

// ---------------------------------------------------------------------------------------------
// 4. post: any thread hands a callable to the loop thread.

void posts_from_several_threads_each_run_once_on_the_loop_thread(void**) {
  constexpr int posters = 4;
  constexpr int per_poster = 250;
  constexpr int total = posters * per_poster;
  uvrt::runtime rt;
  const auto loop_id = std::this_thread::get_id();

  // Touched only by posted callables, which run on the loop thread (the test thread).
  std::vector<int> runs(total, 0);
  int off_loop = 0;
  // The job finishes only once every post has run, so block_on keeps the loop turning until then.
  std::latch all_served(total);
  auto keeper = rt.to_thread([&] { all_served.wait(); });

  std::atomic<int> post_failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < posters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_poster; ++i) {
        const int index = t * per_poster + i;
        try {
          rt.post([&, index] {
            ++runs[index];
            if (std::this_thread::get_id() != loop_id) ++off_loop;
            all_served.count_down();
          });
        } catch (...) {
          ++post_failures;
        }
      }
    });
  }
  rt.block_on(std::move(keeper));
  for (auto& th : threads) th.join();

  assert_int_equal(post_failures.load(), 0);
  assert_int_equal(off_loop, 0);
  for (int i = 0; i < total; ++i) assert_int_equal(runs[i], 1);
}

void exception_from_posted_callable_is_rethrown_by_run_and_block_on(void**) {
  uvrt::runtime rt;

  // run(): the job keeps the loop alive until the posted callable has released it.
  std::latch first_gate(1);
  auto first = rt.to_thread([&] {
    first_gate.wait();
    return 5;
  });
  std::thread poster([&] {
    rt.post([&] {
      first_gate.count_down();
      throw app_error("thrown by a post", 1);
    });
  });
  poster.join();
  std::string from_run = test::expect_throw<app_error>([&] { rt.run(); });
  assert_contains(from_run, "thrown by a post");
  // The exception was reported once: the job's own outcome is still delivered afterwards.
  assert_int_equal(rt.block_on(std::move(first)), 5);

  // block_on(): the same, with the exception surfacing from the call that drives the loop.
  std::latch second_gate(1);
  auto second = rt.to_thread([&] {
    second_gate.wait();
    return 6;
  });
  std::thread poster2([&] {
    rt.post([&] {
      second_gate.count_down();
      throw app_error("thrown by a second post", 2);
    });
  });
  poster2.join();
  std::string from_block_on = test::expect_throw<app_error>([&] { (void)rt.block_on(std::move(second)); });
  assert_contains(from_block_on, "thrown by a second post");
}

void post_of_an_empty_callable_throws_invalid_argument(void**) {
  uvrt::runtime rt;
  std::function<void()> empty;
  test::expect_throw<std::invalid_argument>([&] { rt.post(empty); });
  void (*null_fn)() = nullptr;
  test::expect_throw<std::invalid_argument>([&] { rt.post(null_fn); });
}

// ---------------------------------------------------------------------------------------------
// 5. Several runtimes, each on its own thread, share the process's one pool.

void runtimes_on_their_own_threads_share_the_pool_and_get_only_their_own_results(void**) {
  constexpr int runtimes = 3;
  constexpr int jobs = 20;
  const int pool = uvrt::threadpool_size();

  struct report {
    std::string error;
    int pool_size = -1;
    std::vector<int> results;
    int foreign_continuations = 0;
  };
  std::vector<report> reports(runtimes);

  // Every job waits until all runtimes have submitted, so all their jobs sit in the pool together.
  std::latch all_submitted(runtimes);
  std::mutex workers_mutex;
  std::set<std::thread::id> workers;

  std::vector<std::thread> threads;
  for (int r = 0; r < runtimes; ++r) {
    threads.emplace_back([&, r] {
      report& rep = reports[r];
      try {
        uvrt::runtime rt;
        // Declared after rt so that it is destroyed first: the destructor waits for the jobs,
        // which wait for every thread's arrival.
        struct arrive_once {
          std::latch& l;
          bool done = false;
          void now() {
            if (!done) {
              done = true;
              l.count_down();
            }
          }
          ~arrive_once() { now(); }
        } arrival{all_submitted};

        const auto self = std::this_thread::get_id();
        rep.pool_size = uvrt::threadpool_size();
        for (int i = 0; i < jobs; ++i) {
          const int tag = (r + 1) * 1000 + i;
          rt.to_thread([&, tag] {
              all_submitted.wait();
              {
                std::lock_guard lock(workers_mutex);
                workers.insert(std::this_thread::get_id());
              }
              return tag;
            })
              .then([&rep, self](uvrt::future<int> f) {
                if (std::this_thread::get_id() != self) ++rep.foreign_continuations;
                rep.results.push_back(f.get());
              });
        }
        arrival.now();
        rt.run();
      } catch (const std::exception& e) {
        rep.error = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();

  for (int r = 0; r < runtimes; ++r) {
    const report& rep = reports[r];
    assert_string_equal(rep.error.c_str(), "");
    assert_int_equal(rep.pool_size, pool);
    assert_int_equal(rep.foreign_continuations, 0);
    std::set<int> got(rep.results.begin(), rep.results.end());
    assert_int_equal(rep.results.size(), jobs);
    assert_int_equal(got.size(), jobs);
    for (int i = 0; i < jobs; ++i) assert_int_equal(got.count((r + 1) * 1000 + i), 1);
  }
  // All runtimes' jobs ran on the same threads: never more distinct workers than one pool has.
  assert_true(!workers.empty());
  assert_true(workers.size() <= static_cast<std::size_t>(pool));
}

// ---------------------------------------------------------------------------------------------
// 6. A future belongs to the runtime that made it.

uvrt::task<int> await_future(uvrt::future<int> f) { co_return co_await std::move(f); }

void another_runtimes_future_is_refused_by_block_on_and_co_await(void**) {
  uvrt::runtime a;
  uvrt::runtime b;
  // A's job stays pending until the gate opens, so B cannot see it as ready.
  std::latch gate(1);
  auto for_block_on = a.to_thread([&] {
    gate.wait();
    return 1;
  });
  auto for_await = a.to_thread([&] {
    gate.wait();
    return 2;
  });

  outcome direct = capture<uvrt::usage_error>([&] { (void)b.block_on(std::move(for_block_on)); });
  outcome awaited = capture<uvrt::usage_error>([&] { (void)b.block_on(await_future(std::move(for_await))); });

  // Both futures were consumed by the failed calls; A still owns the jobs and finishes them.
  // This runs before any assertion, so a failure cannot leave jobs blocked on the gate.
  gate.count_down();
  a.run();

  assert_int_equal(direct.kind, outcome::expected);
  assert_contains(direct.message, "belongs to another runtime");
  assert_int_equal(awaited.kind, outcome::expected);
  assert_contains(awaited.message, "belongs to another runtime");
}

// ---------------------------------------------------------------------------------------------
// 7. Only the loop thread may wait on or cancel a pending future; ready() is for anyone.

void then_and_cancel_on_pending_future_from_foreign_thread_throw_usage_error(void**) {
  uvrt::runtime rt;
  std::latch gate(1);
  auto kept = rt.to_thread([&] {
    gate.wait();
    return 3;
  });
  auto handed_over = rt.to_thread([&] {
    gate.wait();
    return 4;
  });

  bool ready_seen = true;
  outcome ready_call, cancel_call, then_call;
  std::atomic<bool> then_ran{false};
  std::thread foreign([&] {
    ready_call = capture<uvrt::usage_error>([&] { ready_seen = kept.ready(); });
    cancel_call = capture<uvrt::usage_error>([&] { (void)kept.cancel(); });
    then_call = capture<uvrt::usage_error>([&] { std::move(handed_over).then([&](uvrt::future<int>) { then_ran = true; }); });
  });
  foreign.join();
  gate.count_down();

  // The refused cancel changed nothing: the job still delivers its value. The refused then()
  // left its future with the caller, still usable.
  const int value = rt.block_on(std::move(kept));
  const bool handed_over_kept = handed_over.valid();
  const int handed_over_value = handed_over_kept ? rt.block_on(std::move(handed_over)) : -1;
  rt.run();

  assert_int_equal(ready_call.kind, outcome::none);
  assert_false(ready_seen);
  assert_int_equal(cancel_call.kind, outcome::expected);
  assert_contains(cancel_call.message, "post");
  assert_int_equal(then_call.kind, outcome::expected);
  assert_int_equal(value, 3);
  assert_true(handed_over_kept);
  assert_int_equal(handed_over_value, 4);
  // The refused then() registered nothing: its callback never runs.
  assert_false(then_ran.load());
}

// A settled future is plain data: another runtime may read it, since the runtime that settled
// it may already be gone. Only pending futures are tied to their runtime.
void a_settled_future_is_read_by_any_runtime(void**) {
  uvrt::runtime b;
  uvrt::future<int> for_block_on;
  uvrt::future<int> for_await;
  {
    uvrt::runtime a;
    for_block_on = a.to_thread([] { return 5; });
    for_await = a.to_thread([] { return 6; });
    a.run();
  }
  assert_int_equal(b.block_on(std::move(for_block_on)), 5);
  assert_int_equal(b.block_on(await_future(std::move(for_await))), 6);
}

void ready_and_get_on_settled_future_from_foreign_thread_work(void**) {
  uvrt::runtime rt;
  std::optional<uvrt::future<int>> settled;
  // The continuation receives the settled future; keep it for another thread to read.
  rt.to_thread([] { return 9; }).then([&](uvrt::future<int> f) { settled.emplace(std::move(f)); });
  rt.run();
  assert_true(settled.has_value());

  bool ready = false;
  int value = 0;
  outcome o;
  std::thread foreign([&] {
    o = capture<uvrt::usage_error>([&] {
      ready = settled->ready();
      value = settled->get();
    });
  });
  foreign.join();
  assert_int_equal(o.kind, outcome::none);
  assert_true(ready);
  assert_int_equal(value, 9);
}

// ---------------------------------------------------------------------------------------------
// 8. The loop cannot be re-entered from inside it.

uvrt::task<int> one_from_pool() { co_return co_await uvrt::to_thread([] { return 1; }); }

uvrt::task<std::vector<std::string>> reenter_from_task(uvrt::runtime& rt) {
  std::vector<std::string> messages;
  // Give the task a real suspension first, so the calls below run on a resumed coroutine.
  (void)co_await uvrt::to_thread([] { return 0; });
  for (auto o : {capture<uvrt::usage_error>([&] { (void)rt.block_on(rt.to_thread([] { return 1; })); }),
                 capture<uvrt::usage_error>([&] { (void)rt.block_on(one_from_pool()); }),
                 capture<uvrt::usage_error>([&] { rt.run(); })}) {
    messages.push_back(o.kind == outcome::expected ? o.message : "<no usage_error>");
  }
  co_return messages;
}

void block_on_and_run_inside_a_task_throw_usage_error(void**) {
  uvrt::runtime rt;
  auto messages = rt.block_on(reenter_from_task(rt));
  assert_int_equal(messages.size(), 3);
  for (const auto& m : messages) assert_contains(m, "inside the loop");
}

// From inside a job, on a worker: the worker does not run the loop, so block_on and run are
// refused with usage_error and the job carries on.
void block_on_and_run_inside_a_job_throw_usage_error(void**) {
  uvrt::runtime rt;
  auto seen = rt.block_on(rt.to_thread([&rt] {
    return std::vector<outcome>{capture<uvrt::usage_error>([&] { (void)rt.block_on(one_from_pool()); }),
                                capture<uvrt::usage_error>([&] { rt.run(); })};
  }));
  assert_int_equal(seen.size(), 2);
  for (const auto& o : seen) {
    assert_int_equal(o.kind, outcome::expected);
    assert_contains(o.message, "thread that does not run");
  }
}

void block_on_and_run_inside_a_continuation_throw_usage_error(void**) {
  uvrt::runtime rt;
  std::vector<outcome> seen;
  rt.to_thread([] { return 1; }).then([&](uvrt::future<int> f) {
    (void)f.get();
    seen.push_back(capture<uvrt::usage_error>([&] { (void)rt.block_on(rt.to_thread([] { return 2; })); }));
    seen.push_back(capture<uvrt::usage_error>([&] { rt.run(); }));
  });
  rt.run();
  assert_int_equal(seen.size(), 2);
  for (const auto& o : seen) {
    assert_int_equal(o.kind, outcome::expected);
    assert_contains(o.message, "inside the loop");
  }
}

// ---------------------------------------------------------------------------------------------
// 9. Jobs run on the pool; continuations and awaiting tasks resume on the loop thread.

uvrt::task<std::thread::id> resume_thread_after_await() {
  (void)co_await uvrt::to_thread([] { return 0; });
  co_return std::this_thread::get_id();
}

void jobs_run_on_pool_threads_and_continuations_on_the_loop_thread(void**) {
  uvrt::runtime rt;
  const auto loop_id = std::this_thread::get_id();
  std::optional<std::thread::id> job_thread, continuation_thread;
  rt.to_thread([] { return std::this_thread::get_id(); }).then([&](uvrt::future<std::thread::id> f) {
    job_thread = f.get();
    continuation_thread = std::this_thread::get_id();
  });
  rt.run();
  const auto task_thread = rt.block_on(resume_thread_after_await());

  assert_true(job_thread.has_value());
  assert_true(continuation_thread.has_value());
  assert_true(*job_thread != loop_id);
  assert_true(*continuation_thread == loop_id);
  assert_true(task_thread == loop_id);
}

// A loop thread that waits for its own jobs without turning the loop (a latch, a busy wait) still
// sees them all run: carriers give their thread back at the end of a time slice only once the loop
// has turned since they set out, since only a turning loop sends carriers again. (Jobs of 1 ms,
// twice a slice of 0.5 ms, six times as many as the pool has threads: before, the first slice's
// end stalled the queue for ever.)
void jobs_run_while_the_loop_thread_waits_for_them_without_turning(void**) {
  test::watchdog dog("jobs waited for without turning the loop", std::chrono::seconds(60));
  uvrt::runtime rt;
  const int jobs = 6 * uvrt::threadpool_size();
  std::latch ran(jobs);
  std::vector<uvrt::future<int>> futures;
  for (int i = 0; i < jobs; ++i) {
    futures.push_back(rt.to_thread([&ran, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the work, not a synchronisation
      ran.count_down();
      return i;
    }));
  }
  ran.wait();
  dog.disarm();
  for (int i = 0; i < jobs; ++i) assert_int_equal(rt.block_on(std::move(futures[static_cast<std::size_t>(i)])), i);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(to_thread_from_foreign_thread_throws_usage_error_and_queues_nothing),
      cmocka_unit_test(a_refused_to_thread_leaves_moved_arguments_alone),
      cmocka_unit_test(free_to_thread_on_plain_thread_throws_no_runtime_error),
      cmocka_unit_test(free_to_thread_on_owner_thread_outside_the_loop_throws_no_runtime_error),
      cmocka_unit_test(free_to_thread_inside_a_job_throws_no_runtime_error),
      cmocka_unit_test(from_thread_returns_value_computed_on_the_loop_thread),
      cmocka_unit_test(from_thread_rethrows_the_callables_exception_with_its_type),
      cmocka_unit_test(from_thread_runs_a_void_callable_on_the_loop_thread),
      cmocka_unit_test(from_thread_on_the_loop_thread_throws_usage_error),
      cmocka_unit_test(from_thread_on_a_plain_thread_throws_no_runtime_error),
      cmocka_unit_test(posts_from_several_threads_each_run_once_on_the_loop_thread),
      cmocka_unit_test(exception_from_posted_callable_is_rethrown_by_run_and_block_on),
      cmocka_unit_test(post_of_an_empty_callable_throws_invalid_argument),
      cmocka_unit_test(runtimes_on_their_own_threads_share_the_pool_and_get_only_their_own_results),
      cmocka_unit_test(another_runtimes_future_is_refused_by_block_on_and_co_await),
      cmocka_unit_test(then_and_cancel_on_pending_future_from_foreign_thread_throw_usage_error),
      cmocka_unit_test(a_settled_future_is_read_by_any_runtime),
      cmocka_unit_test(ready_and_get_on_settled_future_from_foreign_thread_work),
      cmocka_unit_test(block_on_and_run_inside_a_task_throw_usage_error),
      cmocka_unit_test(block_on_and_run_inside_a_continuation_throw_usage_error),
      cmocka_unit_test(block_on_and_run_inside_a_job_throw_usage_error),
      cmocka_unit_test(jobs_run_on_pool_threads_and_continuations_on_the_loop_thread),
      cmocka_unit_test(jobs_run_while_the_loop_thread_waits_for_them_without_turning),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
