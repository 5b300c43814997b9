// expect: over-aligned results are not supported
// A job's block comes from ::operator new, which aligns to 16 bytes; a result that needs more
// would be misaligned, so uvrt refuses it at compile time.
#include <uvrt/uvrt.hpp>

struct alignas(64) cache_line {
  char bytes[64];
};

int main() {
  uvrt::runtime rt;
  (void)rt.to_thread([] { return cache_line{}; });
}
