// A C++20 program built against an installed uvrt with nothing but `pkg-config uvrt`: a runtime
// embedded in the application's loop, a job's value, a task, and exceptions thrown on either
// side of the library boundary caught by their types.
#include <uvrt/uvrt.hpp>
#include <uvrt.h>

#include <cstdio>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

uvrt::task<int> answer() {
  int a = co_await uvrt::to_thread([] { return 20; });
  int b = co_await uvrt::to_thread([](int x) { return x + 2; }, a);
  co_return a + b;
}

}  // namespace

int main() {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  try {
    uvrt::runtime rt(&loop);
    expect(rt.loop() == &loop, "runtime::loop");

    int v = rt.block_on(rt.to_thread([](int x) { return x * x; }, 7));
    expect(v == 49, "to_thread value");
    expect(rt.block_on(answer()) == 42, "task value");

    try {
      rt.block_on(rt.to_thread([]() -> int { throw std::range_error("out of range"); }));
      expect(false, "job exception rethrown");
    } catch (const std::range_error& e) {
      expect(std::string(e.what()) == "out of range", "job exception message");
    }

    // Thrown inside libuvrt, caught here by type.
    auto pending = rt.to_thread([](std::stop_token st) {
      while (!st.stop_requested()) std::this_thread::yield();
      return 1;
    });
    try {
      (void)pending.get();
      expect(false, "usage_error from get() on a pending future");
    } catch (const uvrt::usage_error&) {
    }
    (void)pending.cancel(uvrt::cancel_mode::abandon);
    try {
      (void)rt.block_on(std::move(pending));
      expect(false, "cancelled_error from an abandoned future");
    } catch (const uvrt::cancelled_error&) {
    }
    try {
      uvrt::runtime other(uvrt::options{uvrt::threadpool_size() + 1});
      expect(false, "threadpool_size_error for a second pool size");
    } catch (const uvrt::threadpool_size_error&) {
    }

    // The C API from C++, in the same program.
    expect(std::string(uvrt_err_name(UVRT_ECANCELED)) == "UVRT_ECANCELED", "uvrt_err_name");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 1;
  }
  expect(uv_loop_close(&loop) == 0, "uv_loop_close after the runtime is gone");
  if (failures != 0) return 1;
  std::printf("consumer_cpp: 42\n");
  return 0;
}
