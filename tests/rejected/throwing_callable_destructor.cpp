// expect: uvrt::to_thread: the callable and its arguments must be nothrow destructible
// The callable is destroyed on a worker once it has run, or on the loop thread if the job is
// cancelled before it runs; an exception from its destructor would have nowhere to go (r03: it
// was destroyed twice on the worker, and a cancelled one ended the process). uvrt refuses it.
#include <uvrt/uvrt.hpp>

struct throws_when_destroyed {
  ~throws_when_destroyed() noexcept(false) {}
  int operator()() const { return 7; }
};

int main() {
  uvrt::runtime rt;
  (void)rt.to_thread(throws_when_destroyed{});
}
