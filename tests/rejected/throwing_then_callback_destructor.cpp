// expect: uvrt::future::then: the callback must be nothrow destructible
// A then() callback is destroyed on the loop thread after it ran, or by the teardown: an
// exception from its destructor would have nowhere to go, so uvrt refuses it.
#include <uvrt/uvrt.hpp>

struct throws_when_destroyed {
  ~throws_when_destroyed() noexcept(false) {}
  void operator()(uvrt::future<int>) const {}
};

int main() {
  uvrt::runtime rt;
  rt.to_thread([] { return 7; }).then(throws_when_destroyed{});
}
