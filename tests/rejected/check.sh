#!/bin/sh
# Misuse that uvrt refuses at compile time: each .cpp here must fail to compile, with the message
# named on its first line ("// expect: ..."), so that the refusal is uvrt's static_assert and not
# some unrelated error. Usage: check.sh SOURCE_ROOT (CXX from the environment).
set -eu
root=$1
dir=$root/tests/rejected
status=0
for src in "$dir"/*.cpp; do
  expect=$(sed -n '1s|^// expect: ||p' "$src")
  # shellcheck disable=SC2086 # CXX may hold a command and its flags
  if out=$($CXX -std=c++20 -fsyntax-only -I"$root/runtime/include" $(pkg-config --cflags libuv) "$src" 2>&1); then
    echo "FAIL $(basename "$src"): compiled, but uvrt must refuse it ($expect)"
    status=1
  elif printf '%s' "$out" | grep -qF "$expect"; then
    echo "ok   $(basename "$src"): refused with \"$expect\""
  else
    echo "FAIL $(basename "$src"): failed to compile without \"$expect\":"
    printf '%s\n' "$out" | head -20
    status=1
  fi
done
exit $status
