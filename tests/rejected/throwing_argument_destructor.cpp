// expect: uvrt::to_thread: the callable and its arguments must be nothrow destructible
// The arguments are stored with the callable and destroyed with it, on a worker or, for a
// cancelled job, on the loop thread: one whose destructor may throw is refused as a callable is.
#include <uvrt/uvrt.hpp>

struct throws_when_destroyed {
  ~throws_when_destroyed() noexcept(false) {}
};

int main() {
  uvrt::runtime rt;
  (void)rt.to_thread([](const throws_when_destroyed&) { return 7; }, throws_when_destroyed{});
}
