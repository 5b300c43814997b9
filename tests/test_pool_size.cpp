// libuv's thread pool size as uvrt validates and reports it (see uvrt/threadpool.hpp), and the
// threads of it that options::reserved_threads keeps free of to_thread jobs, process-wide.
//
// The pool is process-wide and sized once, when it first starts, so every case must run in a
// fresh process: the executable runs only the case named by argv[1], and Meson starts it once a
// case. Each case sets or unsets UV_THREADPOOL_SIZE itself before anything touches the pool, so
// the outcome does not depend on the environment the test runner passes in.
//
// Pool threads are counted through /proc: the kernel thread ids that appear when the pool starts
// are compared with the thread ids that jobs report from inside a rendezvous. A rendezvous of n
// jobs, each waiting until all n have arrived, can only finish if n workers run at once, so a
// pool that is too small shows up as a hang that the Meson timeout turns into a failure.
//
// Some cases need the application to act while uvrt is inside its pool start, under its lock.
// The one call uvrt makes there that a test can reach is uv_queue_work, so this file defines
// uv_queue_work itself: the executable's definition comes first in symbol lookup, so uvrt's
// calls (and the test's own) reach it, and it forwards to libuv's. A case arms it, for the
// calling thread only, with an action that runs once libuv's uv_queue_work has returned.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <latch>
#include <semaphore>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

// The action for the next uv_queue_work call on this thread (see the top of the file).
thread_local std::function<void()> inside_next_queue_work;

}  // namespace

// Forwards to libuv's uv_queue_work, then runs the armed action, if any, on the calling thread.
extern "C" int uv_queue_work(uv_loop_t* loop, uv_work_t* req, uv_work_cb work_cb, uv_after_work_cb after_work_cb) {
  static const auto libuv_queue_work = reinterpret_cast<int (*)(uv_loop_t*, uv_work_t*, uv_work_cb, uv_after_work_cb)>(
      dlsym(RTLD_NEXT, "uv_queue_work"));
  if (libuv_queue_work == nullptr) {
    std::fprintf(stderr, "test_pool_size: libuv's uv_queue_work not found\n");
    std::abort();
  }
  const int rc = libuv_queue_work(loop, req, work_cb, after_work_cb);
  if (inside_next_queue_work) std::exchange(inside_next_queue_work, nullptr)();
  return rc;
}

namespace {

constexpr const char* env_name = "UV_THREADPOOL_SIZE";

// Sets the variable, or removes it for a null value, failing the test if the C library refuses.
void set_pool_env(const char* value) {
  const int rc = value ? setenv(env_name, value, 1) : unsetenv(env_name);
  assert_int_equal(rc, 0);
}

// The kernel thread ids of every thread in this process, from /proc/self/task. A set, so that
// the threads a pool start created can be told apart from the ones that were already there.
std::set<pid_t> live_threads() {
  std::set<pid_t> ids;
  DIR* dir = opendir("/proc/self/task");
  assert_non_null(dir);
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    ids.insert(static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10)));
  }
  closedir(dir);
  return ids;
}

// The "Threads:" line of /proc/self/status: the kernel's own count, read independently of the
// task directory so the two measurements can confirm each other.
long status_thread_count() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10);
  }
  fail_msg("/proc/self/status has no Threads: line");
  return -1;
}

// A snapshot of the process's threads, taken before something that may start the pool.
struct thread_snapshot {
  std::set<pid_t> ids = live_threads();
  long count = status_thread_count();

  // The threads that exist now but did not when the snapshot was taken. Also checks that the
  // kernel's count moved by the same amount, so a thread that exited meanwhile cannot hide a
  // new one.
  std::set<pid_t> new_threads() const {
    const std::set<pid_t> now = live_threads();
    std::set<pid_t> added;
    std::set_difference(now.begin(), now.end(), ids.begin(), ids.end(), std::inserter(added, added.end()));
    assert_int_equal(status_thread_count() - count, static_cast<long>(added.size()));
    assert_int_equal(now.size() - ids.size(), added.size());
    return added;
  }
};

// Runs n jobs on `rt` that each wait until all n have started, and returns the kernel thread ids
// they ran on. With fewer than n workers the jobs never all arrive and this never returns.
std::set<pid_t> rendezvous(uvrt::runtime& rt, int n) {
  std::latch all_arrived(n);
  std::vector<uvrt::future<pid_t>> jobs;
  jobs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    jobs.push_back(rt.to_thread([&all_arrived] {
      all_arrived.arrive_and_wait();
      return gettid();
    }));
  }
  // Every job has returned once its future settled, so the latch is no longer in use when this
  // function's frame goes away.
  std::set<pid_t> ids;
  for (auto& job : jobs) ids.insert(rt.block_on(std::move(job)));
  return ids;
}

// Proves that the pool has exactly n threads: the pool start created exactly n threads, and n
// jobs ran at the same time on n distinct threads, which are exactly the ones created.
void expect_pool_of(uvrt::runtime& rt, const thread_snapshot& before_start, int n) {
  const std::set<pid_t> created = before_start.new_threads();
  assert_int_equal(created.size(), static_cast<size_t>(n));
  const std::set<pid_t> workers = rendezvous(rt, n);
  assert_int_equal(workers.size(), static_cast<size_t>(n));
  assert_true(workers == created);
}

// Fails the case with "HANG" if it has not finished within 10 s, so that a deadlock is reported
// as one instead of stalling until Meson's timeout.
class watchdog {
 public:
  explicit watchdog(const char* what)
      : thread_([this, what] {
          if (!finished_.try_acquire_for(std::chrono::seconds(10))) {
            std::printf("Bail out! HANG: %s\n", what);
            std::fflush(stdout);
            _exit(1);
          }
        }) {}
  ~watchdog() {
    finished_.release();
    thread_.join();
  }

 private:
  std::binary_semaphore finished_{0};
  std::thread thread_;
};

// The application starts libuv's pool with plain libuv, n jobs on a loop of the test thread's,
// and keeps every one of the pool's n workers busy in them until release().
class busy_pool {
 public:
  explicit busy_pool(int n) : reqs_(static_cast<size_t>(n)), running_(n) {
    assert_int_equal(uv_loop_init(&loop_), 0);
    for (uv_work_t& req : reqs_) {
      req.data = this;
      const auto hold = [](uv_work_t* r) {
        auto* self = static_cast<busy_pool*>(r->data);
        self->running_.count_down();
        self->released_.wait();
      };
      assert_int_equal(uv_queue_work(&loop_, &req, hold, [](uv_work_t*, int) {}), 0);
    }
    running_.wait();
  }

  void release() {
    if (!release_called_) released_.count_down();
    release_called_ = true;
  }

  // Releases the jobs, lets them finish and closes the loop.
  void finish() {
    release();
    assert_int_equal(uv_run(&loop_, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop_), 0);
  }

 private:
  uv_loop_t loop_;
  std::vector<uv_work_t> reqs_;
  std::latch running_;
  std::latch released_{1};
  bool release_called_ = false;
};

// n threads of the application's, created on request by a thread of its own (not the one that
// asks), which exist until this object goes away.
class app_threads {
 public:
  explicit app_threads(int n)
      : creator_([this, n] {
          go_.acquire();
          std::vector<std::thread> threads;
          for (int i = 0; i < n; ++i) threads.emplace_back([this] { done_.wait(); });
          created_.count_down();
          for (auto& t : threads) t.join();
        }) {}

  // Returns once all n threads exist.
  void create_now() {
    go_.release();
    created_.wait();
  }

  ~app_threads() {
    if (!created_.try_wait()) go_.release();
    done_.count_down();
    creator_.join();
  }

 private:
  std::binary_semaphore go_{0};
  std::latch created_{1};
  std::latch done_{1};
  std::thread creator_;
};

// Whether thread `tid` of this process is asleep in a futex wait (a mutex, a condition variable),
// read from /proc/self/task/TID/syscall without allocating, so that the reader holds none of
// malloc's locks the other thread might need.
bool asleep_in_futex(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  const int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  char text[32];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  // "running" while on a CPU; the syscall's number while blocked in one.
  return text[0] >= '0' && text[0] <= '9' && std::strtol(text, nullptr, 10) == SYS_futex;
}

// Runs one job on `rt` and checks its result, to show the runtime still works.
void expect_working(uvrt::runtime& rt) {
  assert_int_equal(rt.block_on(rt.to_thread([](int x) { return x * 3; }, 14)), 42);
}

// Starts libuv's pool the way an application would without uvrt: one job on a loop of its own,
// run to completion, with plain libuv calls.
void app_starts_pool_with_plain_libuv() {
  uv_loop_t loop;
  uv_work_t req;
  assert_int_equal(uv_loop_init(&loop), 0);
  static int after_work_status = -1;
  assert_int_equal(uv_queue_work(&loop, &req, [](uv_work_t*) {}, [](uv_work_t*, int status) { after_work_status = status; }), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(after_work_status, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

// An invalid UV_THREADPOOL_SIZE must be refused by every way of starting the pool, each time it
// is asked, with a message that names the variable and quotes its value; and uvrt must not have
// let libuv start the pool with its silent mapping of the value.
void expect_env_refused(const char* value) {
  set_pool_env(value);
  const thread_snapshot before;
  const std::string quoted = std::string("\"") + value + "\"";

  std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt; });
  assert_contains(msg, env_name);
  assert_contains(msg, quoted.c_str());

  msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{}); });
  assert_contains(msg, env_name);
  assert_contains(msg, quoted.c_str());

  msg = test::expect_throw<uvrt::threadpool_size_error>([] { (void)uvrt::threadpool_size(); });
  assert_contains(msg, env_name);
  assert_contains(msg, quoted.c_str());

  // The embedding constructor validates the same way; the loop stays the caller's to close.
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  msg = test::expect_throw<uvrt::threadpool_size_error>([&loop] { uvrt::runtime rt(&loop); });
  assert_contains(msg, env_name);
  assert_contains(msg, quoted.c_str());
  assert_int_equal(uv_loop_close(&loop), 0);

  // A refused value is not remembered as if it had started the pool: asking again fails again.
  msg = test::expect_throw<uvrt::threadpool_size_error>([] { (void)uvrt::threadpool_size(); });
  assert_contains(msg, quoted.c_str());

  assert_int_equal(before.new_threads().size(), 0u);
}

// An out-of-range options::threadpool_size must be refused, naming the option and the value,
// without starting the pool.
void expect_option_refused(int value) {
  const thread_snapshot before;
  const std::string shown = std::to_string(value);
  std::string msg = test::expect_throw<uvrt::threadpool_size_error>([value] { uvrt::runtime rt(uvrt::options{value}); });
  assert_contains(msg, "threadpool_size");
  assert_contains(msg, shown.c_str());

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  msg = test::expect_throw<uvrt::threadpool_size_error>([&loop, value] { uvrt::runtime rt(&loop, uvrt::options{value}); });
  assert_contains(msg, "threadpool_size");
  assert_contains(msg, shown.c_str());
  assert_int_equal(uv_loop_close(&loop), 0);

  assert_int_equal(before.new_threads().size(), 0u);
}

// --- Sizes taken from the environment ------------------------------------------------------------

void env_unset_gives_default_4(void**) {
  set_pool_env(nullptr);
  const thread_snapshot before;
  uvrt::runtime rt(uvrt::options{});
  assert_int_equal(uvrt::threadpool_size(), 4);
  expect_pool_of(rt, before, 4);
  // With no preference in the options uvrt has nothing to export, so the variable stays unset.
  assert_null(std::getenv(env_name));
}

void env_3_gives_exactly_3_threads(void**) {
  set_pool_env("3");
  const thread_snapshot before;
  uvrt::runtime rt;
  assert_int_equal(uvrt::threadpool_size(), 3);
  expect_pool_of(rt, before, 3);
}

void size_query_alone_starts_the_pool(void**) {
  // threadpool_size() starts the pool as a default runtime would, so the threads exist before
  // any runtime does and a later runtime has to match them.
  set_pool_env(nullptr);
  const thread_snapshot before;
  assert_int_equal(uvrt::threadpool_size(), 4);
  assert_int_equal(before.new_threads().size(), 4u);
  const std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{5}); });
  assert_contains(msg, "already running with 4 threads");
  uvrt::runtime rt;
  expect_pool_of(rt, before, 4);
}

void env_max_1024_accepted(void**) {
  set_pool_env("1024");
  const thread_snapshot before;
  uvrt::runtime rt;
  assert_int_equal(uvrt::threadpool_size(), 1024);
  expect_pool_of(rt, before, 1024);
}

void env_abc_refused(void**) { expect_env_refused("abc"); }
void env_empty_refused(void**) { expect_env_refused(""); }
void env_0_refused(void**) { expect_env_refused("0"); }
void env_minus_1_refused(void**) { expect_env_refused("-1"); }
void env_1025_refused(void**) { expect_env_refused("1025"); }
void env_leading_space_refused(void**) { expect_env_refused(" 8"); }
void env_trailing_junk_refused(void**) { expect_env_refused("8abc"); }

// --- Sizes taken from the options ----------------------------------------------------------------

void option_minus_1_refused(void**) {
  set_pool_env(nullptr);
  expect_option_refused(-1);
}

void option_1025_refused(void**) {
  // A valid variable must not rescue an invalid option: the option is what the caller asked for.
  set_pool_env("3");
  expect_option_refused(1025);
}

void option_2_gives_exactly_2_threads(void**) {
  set_pool_env(nullptr);
  const thread_snapshot before;
  uvrt::runtime rt(uvrt::options{2});
  assert_int_equal(uvrt::threadpool_size(), 2);
  expect_pool_of(rt, before, 2);
}

void invalid_env_refused_even_with_option(void**) {
  // The variable is validated whatever the option says: a bad value is the caller's mistake to
  // hear about, not one for uvrt to paper over by overwriting it.
  set_pool_env("abc");
  const thread_snapshot before;
  std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{2}); });
  assert_contains(msg, env_name);
  assert_contains(msg, "\"abc\"");

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  msg = test::expect_throw<uvrt::threadpool_size_error>([&loop] { uvrt::runtime rt(&loop, uvrt::options{2}); });
  assert_contains(msg, "\"abc\"");
  assert_int_equal(uv_loop_close(&loop), 0);

  // Nothing was started or changed.
  assert_string_equal(std::getenv(env_name), "abc");
  assert_int_equal(before.new_threads().size(), 0u);
}

void option_wins_over_valid_env(void**) {
  set_pool_env("3");
  const thread_snapshot before;
  uvrt::runtime rt(uvrt::options{2});
  assert_int_equal(uvrt::threadpool_size(), 2);
  expect_pool_of(rt, before, 2);
  // threadpool.hpp says the option is exported, so the variable now describes the pool.
  const char* exported = std::getenv(env_name);
  assert_non_null(exported);
  assert_string_equal(exported, "2");
}

// --- A pool that is already running --------------------------------------------------------------

void second_runtime_must_match_running_pool(void**) {
  set_pool_env(nullptr);
  const thread_snapshot before;
  uvrt::runtime first(uvrt::options{3});

  std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{5}); });
  assert_contains(msg, "process-wide");
  assert_contains(msg, "already running with 3 threads");
  assert_contains(msg, "5");

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  msg = test::expect_throw<uvrt::threadpool_size_error>([&loop] { uvrt::runtime rt(&loop, uvrt::options{4}); });
  assert_contains(msg, "already running with 3 threads");
  assert_int_equal(uv_loop_close(&loop), 0);

  // The failed constructions must leave the first runtime and the pool as they were.
  expect_working(first);
  assert_int_equal(uvrt::threadpool_size(), 3);

  // The same size, or no preference, joins the running pool.
  uvrt::runtime same(uvrt::options{3});
  uvrt::runtime any(uvrt::options{0});
  expect_working(same);
  expect_working(any);
  expect_pool_of(first, before, 3);
}

void env_changes_after_start_are_ignored(void**) {
  // Once the pool runs, a runtime with no preference uses it as it is, whatever the variable
  // says now: libuv will never read it again.
  set_pool_env("3");
  const thread_snapshot before;
  uvrt::runtime first;
  set_pool_env("abc");
  uvrt::runtime second;
  set_pool_env("7");
  assert_int_equal(uvrt::threadpool_size(), 3);
  uvrt::runtime third;
  expect_working(second);
  expect_working(third);
  expect_pool_of(first, before, 3);
}

void concurrent_first_use_starts_one_pool(void**) {
  // Two threads ask for different sizes at the same moment: exactly one must start the pool and
  // the other must be told the size it lost to. Outcomes are carried out of the threads and
  // asserted here, because cmocka's asserts only work on the test thread.
  set_pool_env(nullptr);
  struct outcome {
    int size = 0;
    std::string error;
    pid_t tid = 0;
  };
  outcome got[2];
  const int asked[2] = {2, 3};
  std::latch start(2);
  std::latch reported(2);
  std::latch may_exit(1);
  auto contender = [&](int i) {
    start.arrive_and_wait();
    try {
      uvrt::runtime rt(uvrt::options{asked[i]});
      got[i].size = uvrt::threadpool_size();
    } catch (const uvrt::threadpool_size_error& e) {
      got[i].error = e.what();
    }
    got[i].tid = gettid();
    reported.count_down();
    // The contenders stay alive until the threads have been counted: a thread that has just
    // been joined can still be counted by the kernel for a moment, which would skew the count.
    may_exit.wait();
  };
  const thread_snapshot before;
  std::thread a(contender, 0);
  std::thread b(contender, 1);
  reported.wait();
  std::set<pid_t> pool = before.new_threads();
  may_exit.count_down();
  a.join();
  b.join();
  assert_int_equal(pool.erase(got[0].tid), 1u);
  assert_int_equal(pool.erase(got[1].tid), 1u);

  const int winner = got[0].error.empty() ? 0 : 1;
  const int loser = 1 - winner;
  assert_true(got[winner].error.empty());
  assert_int_equal(got[winner].size, asked[winner]);
  assert_false(got[loser].error.empty());
  assert_int_equal(got[loser].size, 0);
  const std::string expected = "already running with " + std::to_string(asked[winner]) + " threads";
  assert_contains(got[loser].error, expected.c_str());
  assert_int_equal(uvrt::threadpool_size(), asked[winner]);

  // Only the winner's pool was started, and a rendezvous on it finds exactly those threads.
  assert_int_equal(pool.size(), static_cast<size_t>(asked[winner]));
  uvrt::runtime rt;
  assert_true(rendezvous(rt, asked[winner]) == pool);
}

// --- A pool the application started with plain libuv ---------------------------------------------

void app_started_default_pool_is_reported(void**) {
  set_pool_env(nullptr);
  const thread_snapshot before;
  app_starts_pool_with_plain_libuv();
  assert_int_equal(before.new_threads().size(), 4u);
  const thread_snapshot after_app;

  assert_int_equal(uvrt::threadpool_size(), 4);
  const std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{8}); });
  assert_contains(msg, "process-wide");
  assert_contains(msg, "already running with 4 threads");

  uvrt::runtime rt;
  uvrt::runtime same(uvrt::options{4});
  expect_working(rt);
  expect_working(same);
  // uvrt found the pool running and started nothing of its own.
  assert_int_equal(after_app.new_threads().size(), 0u);
  assert_int_equal(rendezvous(rt, 4).size(), 4u);
}

void app_started_pool_conflicts_with_first_runtime(void**) {
  // Here the first thing uvrt is asked for is a size the running pool does not have: uvrt must
  // notice the pool is not its own, name the real size, and put the variable back as it was.
  set_pool_env(nullptr);
  const thread_snapshot before;
  app_starts_pool_with_plain_libuv();
  assert_int_equal(before.new_threads().size(), 4u);

  const std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{8}); });
  assert_contains(msg, "already running with 4 threads");
  assert_null(std::getenv(env_name));
  assert_int_equal(uvrt::threadpool_size(), 4);
  assert_int_equal(before.new_threads().size(), 4u);
}

void app_started_pool_from_env_2_is_reported(void**) {
  set_pool_env("2");
  const thread_snapshot before;
  app_starts_pool_with_plain_libuv();
  assert_int_equal(before.new_threads().size(), 2u);

  assert_int_equal(uvrt::threadpool_size(), 2);
  const std::string msg = test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{3}); });
  assert_contains(msg, "already running with 2 threads");
  uvrt::runtime rt;
  expect_pool_of(rt, before, 2);
}

void app_threads_created_during_probe_do_not_fool_detection(void**) {
  // The application started the pool (4 threads) and keeps its workers busy; then, while uvrt is
  // inside its pool start (inside its uv_queue_work call, and so also inside any wait for the
  // probe job), another thread of the application's creates more threads than uvrt asked for.
  // They are not the pool's: uvrt must still see a running pool of 4 and refuse 8.
  set_pool_env(nullptr);
  std::string outcome;
  {
    busy_pool app(4);
    app_threads extra(10);
    inside_next_queue_work = [&] {
      extra.create_now();
      app.release();
    };
    outcome = test::outcome_of([] { uvrt::runtime rt(uvrt::options{8}); });
    // Before asserting: a failed assert skips destructors, and the workers must not be left
    // waiting on a latch in a frame that is gone.
    app.finish();
  }
  assert_contains(outcome, "threw: ");
  assert_contains(outcome, "already running with 4 threads");
  assert_null(std::getenv(env_name));
  assert_int_equal(uvrt::threadpool_size(), 4);
}

void first_start_from_inside_a_pool_job(void**) {
  // The application's pool has one thread, and the application's job on it is the first to ask
  // uvrt anything. The probe uvrt runs must not need a free worker: the only one is the caller.
  set_pool_env("1");
  const watchdog dog("uvrt::threadpool_size() called from the only pool worker did not return");
  struct outcome {
    int size = 0;
    bool constructed = false;
    std::string error;
  } got;
  uv_loop_t loop;
  uv_work_t req;
  req.data = &got;
  assert_int_equal(uv_loop_init(&loop), 0);
  const auto ask_uvrt = [](uv_work_t* r) {
    auto& out = *static_cast<outcome*>(r->data);
    try {
      out.size = uvrt::threadpool_size();
      uvrt::runtime rt(uvrt::options{1});
      out.constructed = true;
    } catch (const std::exception& e) {
      out.error = e.what();
    }
  };
  assert_int_equal(uv_queue_work(&loop, &req, ask_uvrt, [](uv_work_t*, int) {}), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_string_equal(got.error.c_str(), "");
  assert_int_equal(got.size, 1);
  assert_true(got.constructed);
}

// --- fork() ---------------------------------------------------------------------------------------

void fork_during_pool_start_leaves_child_usable(void**) {
  // Another thread forks while uvrt's pool start holds its lock. The child must not inherit the
  // lock held by a thread it does not have: uvrt must answer there as well. The fork is asked
  // for from inside the start; this thread then waits until the fork is done or the forking
  // thread is asleep (waiting for uvrt's lock to be released, the fix), whichever comes first.
  set_pool_env("2");
  std::binary_semaphore go{0};
  std::latch ready(1);
  std::atomic<pid_t> forker_tid{0};
  std::atomic<bool> about_to_fork{false};
  std::atomic<bool> forked{false};
  int child_status = -1;
  std::thread forker([&] {
    forker_tid = gettid();
    ready.count_down();
    go.acquire();
    about_to_fork = true;
    const pid_t pid = fork();
    if (pid == 0) {
      const watchdog dog("uvrt::threadpool_size() in a child forked during the pool start did not return");
      int size = -1;
      try {
        size = uvrt::threadpool_size();
      } catch (...) {
        _exit(4);
      }
      _exit(size == 2 ? 0 : 3);
    }
    forked = true;
    if (pid > 0) waitpid(pid, &child_status, 0);
  });
  ready.wait();
  inside_next_queue_work = [&] {
    go.release();
    while (!forked && !(about_to_fork && asleep_in_futex(forker_tid))) std::this_thread::yield();
  };
  uvrt::runtime rt;
  forker.join();
  assert_true(WIFEXITED(child_status));
  assert_int_equal(WEXITSTATUS(child_status), 0);
  assert_int_equal(uvrt::threadpool_size(), 2);
  expect_working(rt);
}

// --- Reserved threads (options::reserved_threads) ---------------------------------------------------

// What a plain libuv request, queued on a loop while to_thread jobs hold their threads, saw when
// its work callback ran on a pool thread.
struct libuv_probe {
  uv_work_t req;
  std::atomic<int>* started = nullptr;  // to_thread jobs started so far
  std::atomic<int>* running = nullptr;  // to_thread jobs running now
  int started_seen = -1;
  int running_seen = -1;
  std::binary_semaphore ran{0};
  int after_status = -1;

  void queue_on(uv_loop_t* loop) {
    req.data = this;
    const auto work = [](uv_work_t* r) {
      auto* self = static_cast<libuv_probe*>(r->data);
      self->started_seen = self->started->load();
      self->running_seen = self->running->load();
      self->ran.release();
    };
    const auto after = [](uv_work_t* r, int status) { static_cast<libuv_probe*>(r->data)->after_status = status; };
    assert_int_equal(uv_queue_work(loop, &req, work, after), 0);
  }
};

// to_thread jobs that count how many run at once and, the first `held` of them, wait at a gate the
// test opens; the rest stand for work of 200 µs, so that they would overlap if allowed to.
struct held_jobs {
  std::atomic<int> started{0};
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::latch gate{1};
  const int held;

  explicit held_jobs(int n_held) : held(n_held) {}

  uvrt::future<int> submit(uvrt::runtime& rt, int i) {
    return rt.to_thread([this, i] {
      const int now = ++running;
      for (int seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
      }
      if (++started <= held) {
        started.notify_all();
        gate.wait();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      --running;
      return i;
    });
  }
  // Returns once `n` jobs have started.
  void wait_started(int n) {
    for (int seen = started.load(); seen < n; seen = started.load()) started.wait(seen);
  }
};

// Out of range: below -1, or not below the pool's size, whether the pool is about to start (then
// nothing is started and the variable is left alone) or already runs.
void reserved_threads_out_of_range_refused(void**) {
  set_pool_env(nullptr);
  const thread_snapshot before;
  const auto refused = [](uvrt::options o, const char* expected) {
    const std::string msg = test::expect_throw<uvrt::threadpool_size_error>([o] { uvrt::runtime rt(o); });
    assert_contains(msg, "reserved_threads");
    assert_contains(msg, std::to_string(o.reserved_threads).c_str());
    assert_contains(msg, expected);
  };
  refused(uvrt::options{.reserved_threads = -2}, "out of range");
  refused(uvrt::options{.reserved_threads = 4}, "expected 0 to 3");  // the default pool of 4
  refused(uvrt::options{.reserved_threads = 1024}, "out of range");
  refused(uvrt::options{.threadpool_size = 2, .reserved_threads = 2}, "expected 0 to 1");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  const std::string msg = test::expect_throw<uvrt::threadpool_size_error>(
      [&loop] { uvrt::runtime rt(&loop, uvrt::options{.reserved_threads = 5}); });
  assert_contains(msg, "reserved_threads");
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_null(std::getenv(env_name));
  assert_int_equal(before.new_threads().size(), 0u);

  // pool size - 1 is the most: every to_thread job then shares one thread.
  uvrt::runtime rt(uvrt::options{.reserved_threads = 3});
  expect_working(rt);
  assert_int_equal(uvrt::threadpool_size(), 4);
  refused(uvrt::options{.reserved_threads = 4}, "expected 0 to 3");
  refused(uvrt::options{.reserved_threads = -2}, "out of range");
  expect_working(rt);
}

// The reservation is process-wide: once a runtime set it, a runtime asking for another value is
// refused, and one with no preference (-1) or the same value shares it.
void reserved_threads_conflict_refused(void**) {
  set_pool_env(nullptr);
  uvrt::runtime first(uvrt::options{.reserved_threads = 1});
  for (int other : {0, 2}) {
    const std::string msg =
        test::expect_throw<uvrt::threadpool_size_error>([other] { uvrt::runtime rt(uvrt::options{.reserved_threads = other}); });
    assert_contains(msg, "process reserves 1 thread");
    assert_contains(msg, "process-wide");
  }
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  test::expect_throw<uvrt::threadpool_size_error>([&loop] { uvrt::runtime rt(&loop, uvrt::options{.reserved_threads = 2}); });
  assert_int_equal(uv_loop_close(&loop), 0);
  uvrt::runtime any(uvrt::options{});
  uvrt::runtime same(uvrt::options{.reserved_threads = 1});
  expect_working(first);
  expect_working(any);
  expect_working(same);
}

// options.hpp: "The first runtime sets it" (the issue: "the first runtime sets it, a later runtime
// asking for another value gets threadpool_size_error"). threadpool_size() is a query, not a
// runtime: asked first, it starts the pool but leaves the reservation to the first runtime.
void first_runtime_sets_reserved_threads_after_a_size_query(void**) {
  set_pool_env(nullptr);
  assert_int_equal(uvrt::threadpool_size(), 4);
  const std::string outcome = test::outcome_of([] {
    uvrt::runtime rt(uvrt::options{.reserved_threads = 1});
    expect_working(rt);
  });
  assert_string_equal(outcome.c_str(), "returned");
  // And it was set: another value is now a conflict.
  test::expect_throw<uvrt::threadpool_size_error>([] { uvrt::runtime rt(uvrt::options{.reserved_threads = 2}); });
}

// Pool 4, 1 reserved: of 40 to_thread jobs at most 3 run at once. While 3 of them are held, a
// plain uv_queue_work on the same loop gets the fourth thread: its work runs while the three are
// still held (the test opens their gate only once it ran), and sees exactly 3 started.
void reserved_1_of_4_keeps_a_thread_for_libuv(void**) {
  set_pool_env(nullptr);
  const watchdog dog("reserved_1_of_4_keeps_a_thread_for_libuv");
  uvrt::runtime rt(uvrt::options{.threadpool_size = 4, .reserved_threads = 1});
  held_jobs jobs(3);
  libuv_probe probe;
  probe.started = &jobs.started;
  probe.running = &jobs.running;
  std::vector<uvrt::future<int>> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(jobs.submit(rt, i));
  jobs.wait_started(3);
  probe.queue_on(rt.loop());
  const bool ran_while_held = probe.ran.try_acquire_for(std::chrono::seconds(5));
  jobs.gate.count_down();
  std::vector<int> got;
  for (auto& f : fs) got.push_back(rt.block_on(std::move(f)));
  rt.run();  // the probe's after-work callback
  assert_true(ran_while_held);
  assert_int_equal(probe.started_seen, 3);
  assert_int_equal(probe.running_seen, 3);
  assert_int_equal(probe.after_status, 0);
  assert_int_equal(jobs.peak.load(), 3);
  for (int i = 0; i < 40; ++i) assert_int_equal(got[static_cast<std::size_t>(i)], i);
}

// The reservation bounds every runtime of the process together: two runtimes (the second with no
// preference) hold 3 threads between them, and libuv's request still finds the fourth.
void reserved_threads_bound_every_runtime_together(void**) {
  set_pool_env(nullptr);
  const watchdog dog("reserved_threads_bound_every_runtime_together");
  uvrt::runtime a(uvrt::options{.threadpool_size = 4, .reserved_threads = 1});
  uvrt::runtime b;
  held_jobs jobs(3);
  libuv_probe probe;
  probe.started = &jobs.started;
  probe.running = &jobs.running;
  std::vector<uvrt::future<int>> fa, fb;
  for (int i = 0; i < 2; ++i) fa.push_back(jobs.submit(a, i));
  for (int i = 0; i < 20; ++i) fb.push_back(jobs.submit(b, i));
  jobs.wait_started(3);
  probe.queue_on(b.loop());
  const bool ran_while_held = probe.ran.try_acquire_for(std::chrono::seconds(5));
  jobs.gate.count_down();
  // Each runtime turns its own loop; a slot one gives back goes to the other's line.
  for (auto& f : fa) (void)a.block_on(std::move(f));
  for (auto& f : fb) (void)b.block_on(std::move(f));
  b.run();
  a.run();
  assert_true(ran_while_held);
  assert_int_equal(probe.started_seen, 3);
  assert_int_equal(probe.running_seen, 3);
  assert_int_equal(probe.after_status, 0);
  assert_int_equal(jobs.peak.load(), 3);
  assert_int_equal(jobs.started.load(), 22);
}

// Pool 4, none reserved: 4 to_thread jobs run at once (the first 4 are held until all 4 started).
void reserved_0_of_4_runs_4_at_once(void**) {
  set_pool_env(nullptr);
  const watchdog dog("reserved_0_of_4_runs_4_at_once");
  uvrt::runtime rt(uvrt::options{.threadpool_size = 4, .reserved_threads = 0});
  held_jobs jobs(4);
  std::vector<uvrt::future<int>> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(jobs.submit(rt, i));
  jobs.wait_started(4);
  const int running_when_held = jobs.running.load();
  jobs.gate.count_down();
  for (auto& f : fs) (void)rt.block_on(std::move(f));
  assert_int_equal(running_when_held, 4);
  assert_int_equal(jobs.peak.load(), 4);
}

// The cases, by name. Keep in step with pool_cases in meson.build, which runs each one.
const CMUnitTest cases[] = {
    cmocka_unit_test(env_unset_gives_default_4),
    cmocka_unit_test(env_3_gives_exactly_3_threads),
    cmocka_unit_test(size_query_alone_starts_the_pool),
    cmocka_unit_test(env_max_1024_accepted),
    cmocka_unit_test(env_abc_refused),
    cmocka_unit_test(env_empty_refused),
    cmocka_unit_test(env_0_refused),
    cmocka_unit_test(env_minus_1_refused),
    cmocka_unit_test(env_1025_refused),
    cmocka_unit_test(env_leading_space_refused),
    cmocka_unit_test(env_trailing_junk_refused),
    cmocka_unit_test(option_minus_1_refused),
    cmocka_unit_test(option_1025_refused),
    cmocka_unit_test(option_2_gives_exactly_2_threads),
    cmocka_unit_test(invalid_env_refused_even_with_option),
    cmocka_unit_test(option_wins_over_valid_env),
    cmocka_unit_test(second_runtime_must_match_running_pool),
    cmocka_unit_test(env_changes_after_start_are_ignored),
    cmocka_unit_test(concurrent_first_use_starts_one_pool),
    cmocka_unit_test(app_started_default_pool_is_reported),
    cmocka_unit_test(app_started_pool_conflicts_with_first_runtime),
    cmocka_unit_test(app_started_pool_from_env_2_is_reported),
    cmocka_unit_test(app_threads_created_during_probe_do_not_fool_detection),
    cmocka_unit_test(first_start_from_inside_a_pool_job),
    cmocka_unit_test(fork_during_pool_start_leaves_child_usable),
    cmocka_unit_test(reserved_threads_out_of_range_refused),
    cmocka_unit_test(reserved_threads_conflict_refused),
    cmocka_unit_test(first_runtime_sets_reserved_threads_after_a_size_query),
    cmocka_unit_test(reserved_1_of_4_keeps_a_thread_for_libuv),
    cmocka_unit_test(reserved_threads_bound_every_runtime_together),
    cmocka_unit_test(reserved_0_of_4_runs_4_at_once),
};

}  // namespace

int main(int argc, char** argv) {
  // Exactly one case per process: running two would let the first one's pool decide the second.
  if (argc == 2) {
    for (const CMUnitTest& c : cases) {
      if (std::string(c.name) == argv[1]) {
        // Sanitizer runtimes (ThreadSanitizer) start a helper thread of their own when the process
        // first creates a thread, which would land among the pool's new threads. A thread parked
        // for the whole case makes that happen now, and no thread exits while a case counts.
        std::latch case_done(1);
        std::thread parked([&] { case_done.wait(); });
        // A group of one, so the TAP plan and results cover this case alone.
        const CMUnitTest one[] = {c};
        const int failed = cmocka_run_group_tests_name(c.name, one, nullptr, nullptr);
        case_done.count_down();
        parked.join();
        return failed;
      }
    }
  }
  // An unknown or missing name must fail loudly rather than run nothing and pass: "Bail out!"
  // makes a TAP reader stop with an error, and the exit status fails any other runner.
  if (argc == 2) {
    std::printf("Bail out! test_pool_size: no case is named \"%s\"\n", argv[1]);
  } else {
    std::printf("Bail out! test_pool_size: expected one case name as the only argument\n");
  }
  std::fprintf(stderr, "usage: %s CASE\nknown cases:\n", argc > 0 ? argv[0] : "test_pool_size");
  for (const CMUnitTest& c : cases) std::fprintf(stderr, "  %s\n", c.name);
  return 2;
}
