#!/bin/sh
# Builds tests/consumer, a Meson project of its own, in a temporary directory with uvrt as its
# subproject (subprojects/uvrt is a symlink to uvrt's source root, which Meson 1.0.1 accepts),
# once with uvrt's shared library and once with its static one, and runs both programs. The
# programs are tests/install's, which the install check builds against an installed uvrt.
#
# Usage: check.sh UVRT_SOURCE_ROOT [CONSUMER_DIR]
# Environment: MESON (default: meson); UVRT_SANITIZE: the calling build's b_sanitize (default
# none), which the consumer is configured with too, so that under .ci/sanitize these programs and
# the uvrt they embed are instrumented like the rest of the suite.
set -eu
# Meson points LD_LIBRARY_PATH at its own build dir for tests that use a shared library: the
# programs built here must find the subproject's libuvrt through their RUNPATH, and only that.
unset LD_LIBRARY_PATH

src=$(cd "${1:?usage: check.sh UVRT_SOURCE_ROOT [CONSUMER_DIR]}" && pwd)
here=$(cd "${2:-$(dirname "$0")}" && pwd)
meson=${MESON:-meson}
sanitize=${UVRT_SANITIZE:-none}

command -v "$meson" >/dev/null 2>&1 || { echo "SKIP: $meson not found"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uvrt-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Only the consumer's own sources: no build directory that might lie around in it.
mkdir "$tmp/consumer" "$tmp/consumer/subprojects"
cp "$here/meson.build" "$here/../install/consumer.c" "$here/../install/consumer.cpp" "$tmp/consumer/"
ln -s "$src" "$tmp/consumer/subprojects/uvrt"

expect_output() {  # program expected-stdout
  out=$("$1") || fail "$1 exited with status $?"
  [ "$out" = "$2" ] || fail "$1 printed '$out', expected '$2'"
  echo "ok: $1: $out"
}

# Shared libraries built with -fsanitize leave the runtime's symbols undefined: no -z defs then.
sanitize_opts=
[ "$sanitize" = none ] || sanitize_opts="-Db_sanitize=$sanitize -Db_lundef=false"

for kind in shared static; do
  build="$tmp/build-$kind"
  # --force-fallback-for: use the subproject even if a uvrt is installed on this machine.
  # shellcheck disable=SC2086 # the options are words
  "$meson" setup --wrap-mode=nodownload --force-fallback-for=uvrt $sanitize_opts \
    "-Duvrt:default_library=$kind" "$build" "$tmp/consumer"
  "$meson" compile -C "$build"

  # As a subproject, uvrt builds its library only: no tests, no benchmark.
  if grep -q -e 'subprojects/uvrt/tests/' -e 'subprojects/uvrt/bench/' "$build/build.ninja"; then
    fail "uvrt built its tests or benchmark as a subproject"
  fi

  for prog in consumer_c consumer_cpp; do
    exe="$build/$prog"
    needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    case $kind in
      shared)
        echo "$needed" | grep -qx 'libuvrt\.so\.0' || fail "$prog does not need libuvrt.so.0: $needed"
        resolved=$(ldd "$exe" | sed -n 's/^[[:space:]]*libuvrt\.so\.0 => \([^ ]*\) .*/\1/p')
        [ "$resolved" = "$build/subprojects/uvrt/libuvrt.so.0" ] ||
          fail "$prog loads libuvrt.so.0 from '$resolved', not from the subproject's build"
        ;;
      static)
        if echo "$needed" | grep -q libuvrt; then fail "$prog, linked statically, still needs $needed"; fi
        nm "$exe" | grep -q -e ' T uvrt_' -e ' T _ZN4uvrt' || fail "$prog has no uvrt code linked in"
        ;;
    esac
  done

  expect_output "$build/consumer_c" "consumer_c: 49, EIO 'disk on fire'"
  expect_output "$build/consumer_cpp" "consumer_cpp: 42"
done
