// expect: uvrt::runtime::post: the callable must be nothrow destructible
// A posted callable is destroyed on the loop thread after it ran, inside a noexcept path: an
// exception from its destructor would end the process, so uvrt refuses it.
#include <uvrt/uvrt.hpp>

struct throws_when_destroyed {
  ~throws_when_destroyed() noexcept(false) {}
  void operator()() const {}
};

int main() {
  uvrt::runtime rt;
  rt.post(throws_when_destroyed{});
}
