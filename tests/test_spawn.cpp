// spawn: see runtime/include/uvrt/spawn.hpp.
#include "support.hpp"

namespace {

void placeholder(void**) {
  uvrt::runtime rt;
  assert_true(rt.loop() != nullptr);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(placeholder),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
