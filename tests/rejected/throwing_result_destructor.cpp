// expect: T's destructor must not throw
// A result is destroyed by whoever drops the job's last reference: the loop thread, a worker, or
// the destructor of a future; an exception from there would have nowhere to go. uvrt refuses such
// a result type at compile time instead.
#include <uvrt/uvrt.hpp>

struct throws_when_destroyed {
  ~throws_when_destroyed() noexcept(false) {}
};

int main() {
  uvrt::runtime rt;
  (void)rt.to_thread([] { return throws_when_destroyed{}; });
}
