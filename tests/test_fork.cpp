// fork() while a runtime exists. The child inherits a copy of the runtime, but not its jobs (the
// pool threads running them exist only in the parent), and it shares the loop's epoll instance
// and wake-up descriptor with the parent: a child that turned the inherited loop could wait for
// ever for a job that is not there, and consume the parent's wake-ups. So in the child every use
// of an inherited runtime is refused with usage_error naming fork, except destroying it, which
// returns at once without turning its loop; a new runtime works; the parent is unaffected.
//
// Each child reports through a pipe, one line per check as soon as it is known (so a child that
// hangs still shows how far it got), and has alarm(5) as its watchdog: a hang kills it with
// SIGALRM. The parent asserts on the report and the child's status. Nothing sleeps to synchronise
// except the job of the wake-up test, which sleeps 300 ms so that it finishes while a child that
// turned the inherited loop would be waiting on it.
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;

struct hold {
  std::latch started{1};
  std::latch release{1};
};

// How a call ended, for the report: "usage_error naming fork" is what the contract wants.
template <class F>
std::string refusal(F&& f) {
  try {
    f();
    return "returned";
  } catch (const uvrt::usage_error& e) {
    return test::contains(e.what(), "fork") ? "usage_error naming fork" : std::string("usage_error: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("threw another exception: ") + e.what();
  } catch (...) {
    return "threw a non-std exception";
  }
}

// How a forked child ended, once it has: "exited N", "killed by signal N"; "not forked" for a pid
// of -1.
std::string end_of(pid_t child) {
  if (child <= 0) return "not forked";
  int status = 0;
  if (waitpid(child, &status, 0) != child) return "waitpid failed";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended another way";
}

// Forks; the child runs `body(write_line)` and ends with _exit(0) (3 if `body` threw). Returns the
// child's pid and the read end of its report pipe.
template <class Body>
std::pair<pid_t, int> fork_child(Body body) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, -1};
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid != 0) {
    close(fds[1]);
    return {pid, fds[0]};
  }
  alarm(5);  // the default action ends the child: a hang shows as SIGALRM
  close(fds[0]);
  const int out = fds[1];
  auto write_line = [out](const std::string& line) {
    const std::string l = line + "\n";
    (void)!write(out, l.data(), l.size());
  };
  try {
    body(write_line);
  } catch (const std::exception& e) {
    write_line(std::string("child threw: ") + e.what());
    _exit(3);
  } catch (...) {
    write_line("child threw a non-std exception");
    _exit(3);
  }
  _exit(0);
}

// Reads the child's report until it closes the pipe (it exits or is killed), then reaps it.
// Returns the report followed by how the child ended.
std::string collect(std::pair<pid_t, int> child) {
  auto [pid, fd] = child;
  if (pid < 0) return "fork or pipe failed";
  std::string report;
  char buf[256];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10'000) != 1) {  // the child has alarm(5): this is a second line of defence
      report += "no end of report after 10 s\n";
      kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    report.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return report + "waitpid failed";
  if (WIFEXITED(status)) return report + "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return report + "killed by signal " + std::to_string(WTERMSIG(status)) +
           (WTERMSIG(status) == SIGALRM ? " (alarm: the child hung)" : "");
  return report + "ended oddly";
}

// (a) A job of the parent's is in flight. In the child, every use of the inherited runtime and
// of the pending future is refused with usage_error naming fork, destroying it returns at once,
// and a new runtime runs a job. Then the parent's job, released, gives its value.
void a_forked_child_refuses_the_inherited_runtime_and_can_destroy_it(void**) {
  auto h = std::make_shared<hold>();
  auto rt = std::make_unique<uvrt::runtime>();
  auto f = rt->to_thread([h] {
    h->started.count_down();
    h->release.wait();
    return 1;
  });
  h->started.wait();
  const std::string child = collect(fork_child([&](auto say) {
    say("to_thread: " + refusal([&] { (void)rt->to_thread([] { return 0; }); }));
    say("post: " + refusal([&] { rt->post([] {}); }));
    say("run: " + refusal([&] { rt->run(); }));
    say("shutdown: " + refusal([&] { (void)rt->shutdown(1s); }));
    say("cancel: " + refusal([&] { (void)f.cancel(); }));
    say("block_on: " + refusal([&] { (void)rt->block_on(std::move(f)); }));
    rt.reset();
    say("destroyed");
    uvrt::runtime fresh;
    say("new runtime: " + std::to_string(fresh.block_on(fresh.to_thread([] { return 42; }))));
  }));
  h->release.count_down();
  test::watchdog dog("the parent's block_on of its job after the child ended");
  int value = 0;
  const std::string outcome = test::outcome_of([&] { value = rt->block_on(std::move(f)); });
  rt.reset();
  dog.disarm();

  assert_string_equal(child.c_str(),
                      "to_thread: usage_error naming fork\n"
                      "post: usage_error naming fork\n"
                      "run: usage_error naming fork\n"
                      "shutdown: usage_error naming fork\n"
                      "cancel: usage_error naming fork\n"
                      "block_on: usage_error naming fork\n"
                      "destroyed\n"
                      "new runtime: 42\n"
                      "exited 0");
  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 1);
}

// (b) The child destroys the inherited runtime while the parent's job runs, and the job finishes
// (after 300 ms) while a child that turned the inherited loop would still be waiting on it. The
// child must not take the parent's wake-up: the parent's block_on returns the job's value.
void a_forked_child_does_not_take_the_parent_s_wake_ups(void**) {
  auto h = std::make_shared<hold>();
  auto rt = std::make_unique<uvrt::runtime>();
  auto f = rt->to_thread([h] {
    h->started.count_down();
    std::this_thread::sleep_for(300ms);
    return 1;
  });
  h->started.wait();
  const std::string child = collect(fork_child([&](auto say) {
    rt.reset();
    say("destroyed");
  }));
  test::watchdog dog("the parent's block_on of the job that finished while the child existed");
  int value = 0;
  const std::string outcome = test::outcome_of([&] { value = rt->block_on(std::move(f)); });
  rt.reset();
  dog.disarm();

  assert_string_equal(child.c_str(), "destroyed\nexited 0");
  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 1);
}

// (c) Nothing in flight: the child only destroys the inherited runtime and starts a new one; the
// parent's runtime still works afterwards.
void a_forked_child_with_nothing_in_flight_destroys_the_inherited_runtime(void**) {
  auto rt = std::make_unique<uvrt::runtime>();
  const int before = rt->block_on(rt->to_thread([] { return 3; }));
  const std::string child = collect(fork_child([&](auto say) {
    rt.reset();
    say("destroyed");
    uvrt::runtime fresh;
    say("new runtime: " + std::to_string(fresh.block_on(fresh.to_thread([] { return 42; }))));
  }));
  test::watchdog dog("the parent's block_on after the child ended");
  const int after = rt->block_on(rt->to_thread([] { return 4; }));
  rt.reset();
  dog.disarm();

  assert_int_equal(before, 3);
  assert_string_equal(child.c_str(), "destroyed\nnew runtime: 42\nexited 0");
  assert_int_equal(after, 4);
}

// r2: fork() inside a then() continuation, while the parent's block_on waits for a slower job.
// The child returns from the continuation into the block_on it inherited, on the parent's loop:
// it must not turn that loop (it would wait for ever for a job that exists only in the parent,
// and could take the parent's wake-ups); its block_on throws usage_error naming fork, which it
// reports through its exit status (0; 1: block_on returned; 2: it threw something else; killed
// by SIGALRM: it hung). The parent's block_on returns the slower job's value. That job returns
// only once the fork happened (the continuation counts a latch down after fork() returned in the
// parent), so it finishes while the child exists.
void fork_inside_a_continuation_leaves_the_child_a_refusing_block_on(void**) {
  auto forked = std::make_shared<std::latch>(1);
  auto rt = std::make_unique<uvrt::runtime>();
  pid_t child = -1;
  auto slow = rt->to_thread([forked] {
    forked->wait();
    return 5;
  });
  rt->to_thread([] { return 0; }).then([&child, forked](uvrt::future<int>) {
    std::fflush(stdout);
    std::fflush(stderr);
    child = fork();
    if (child == 0) {
      alarm(5);  // the child's watchdog: a hang ends it with SIGALRM
      return;
    }
    forked->count_down();
  });
  test::watchdog dog("the parent's block_on of a job that finished after a continuation forked, or the child",
                     std::chrono::seconds(15));
  int value = 0;
  const std::string outcome = refusal([&] { value = rt->block_on(std::move(slow)); });
  if (child == 0) _exit(outcome == "usage_error naming fork" ? 0 : outcome == "returned" ? 1 : 2);
  const std::string child_end = end_of(child);
  rt.reset();
  dog.disarm();

  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 5);
  assert_string_equal(child_end.c_str(), "exited 0");
}


// Regression (review of issue 13's first version): fork() inside a continuation that the timers'
// clock resumes. Two sleeps share one deadline, so one pass of the clock's callback fires both; the
// first one's continuation forks. The child went on with the pass and resumed the parent's second
// continuation (the clock checked for an inherited core only on entry): it must stop there, as the
// mailbox and the settlement do. The child exits 3 if the second continuation ran in it.
void fork_inside_a_timer_continuation_leaves_the_rest_of_the_pass_to_the_parent(void**) {
  uvrt::runtime rt;
  pid_t child = -1;
  bool second_ran = false;
  const auto at = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
  rt.sleep_until(at).then([&](uvrt::future<void>) {
    std::fflush(stdout);
    std::fflush(stderr);
    child = fork();
    if (child == 0) alarm(5);  // the child's watchdog
  });
  rt.sleep_until(at).then([&](uvrt::future<void>) { second_ran = true; });
  test::watchdog dog("a fork inside a timer continuation", std::chrono::seconds(15));
  const std::string outcome = refusal([&] { rt.run(); });
  if (child == 0) _exit(second_ran ? 3 : 0);
  const std::string child_end = end_of(child);
  dog.disarm();

  assert_string_equal(outcome.c_str(), "returned");
  assert_true(second_ran);
  assert_string_equal(child_end.c_str(), "exited 0");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_forked_child_refuses_the_inherited_runtime_and_can_destroy_it),
      cmocka_unit_test(a_forked_child_does_not_take_the_parent_s_wake_ups),
      cmocka_unit_test(a_forked_child_with_nothing_in_flight_destroys_the_inherited_runtime),
      cmocka_unit_test(fork_inside_a_continuation_leaves_the_child_a_refusing_block_on),
      cmocka_unit_test(fork_inside_a_timer_continuation_leaves_the_rest_of_the_pass_to_the_parent),
  };
  return cmocka_run_group_tests_name("fork", tests, nullptr, nullptr);
}
