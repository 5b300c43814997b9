#!/bin/sh
# Installs a built uvrt into a temporary DESTDIR (never the real prefix) and builds a CMake project
# against it as CMake users will, with find_package(uvrt CONFIG REQUIRED) and uvrt::uvrt only
# (tests/cmake/CMakeLists.txt): consumer.c as C11 and consumer.cpp as C++20, tests/install's
# programs. It checks that the package's paths point into the DESTDIR (the package is relocatable:
# the prefix it was configured for is not there), which libuvrt each program really uses
# (readelf, ldd), runs them, and checks that the version file refuses a later minor version.
#
# Usage: check.sh BUILD_DIR PREFIX VERSION [DEFAULT_LIBRARY [SANITIZE]]
#   PREFIX, VERSION: the build's prefix and uvrt's version (meson.build's project()).
#   DEFAULT_LIBRARY: the build's default_library (both: the package names the shared library).
#   SANITIZE: the build's b_sanitize (default none); the programs are built with the same
#   -fsanitize, as tests/install/check.sh builds its own.
# Environment: MESON (default: meson); CC and CXX (default: CMake's choice), a compiler and
# possibly options; UVRT_SOVERSION (default 0), the SONAME's number.
# Exits 77 (skipped) if cmake is not installed.
set -eu
# Meson points LD_LIBRARY_PATH at its build dir for tests that use a shared library: the
# programs here must find the installed one, and only that.
unset LD_LIBRARY_PATH

usage='usage: check.sh BUILD_DIR PREFIX VERSION [DEFAULT_LIBRARY [SANITIZE]]'
build=$(cd "${1:?$usage}" && pwd)
prefix=${2:?$usage}
version=${3:?$usage}
kind=${4:-both}
sanitize=${5:-none}
here=$(cd "$(dirname "$0")" && pwd)
meson=${MESON:-meson}
soname=libuvrt.so.${UVRT_SOVERSION:-0}

for tool in cmake "$meson" readelf ldd nm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
case $kind in
  both | shared) kind=shared ;;
  static) ;;
  *) echo "unknown default_library '$kind'" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uvrt-cmake.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
dest="$tmp/dest"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$meson" install --destdir "$dest" --no-rebuild --quiet -C "$build"

config=$(find "$dest" -name uvrtConfig.cmake)
[ -n "$config" ] || fail "no uvrtConfig.cmake installed (was cmake missing when the build was configured? reconfigure it)"
[ "$(echo "$config" | wc -l)" -eq 1 ] || fail "several uvrtConfig.cmake installed: $config"
config_dir=$(dirname "$config")
[ -f "$config_dir/uvrtConfigVersion.cmake" ] || fail "no uvrtConfigVersion.cmake next to $config"
# <libdir>/cmake/uvrt, next to the library.
libdir=$(dirname "$(dirname "$config_dir")")
case $config_dir in */cmake/uvrt) ;; *) fail "$config is not in <libdir>/cmake/uvrt" ;; esac
ls "$libdir"/libuvrt.* >/dev/null 2>&1 || fail "no libuvrt in $libdir, the directory above cmake/uvrt"
echo "installed: ${config#"$dest"} and uvrtConfigVersion.cmake"

mkdir "$tmp/project"
cp "$here/CMakeLists.txt" "$here/../install/consumer.c" "$here/../install/consumer.cpp" "$tmp/project/"

flags=
[ "$sanitize" = none ] || flags="-fsanitize=$sanitize"

configure() {  # BUILD_DIR CMAKE_ARGS...: configures the project against the DESTDIR's prefix
  dir=$1
  shift
  # Ninja: ninja-build is needed by Meson anyway, make may not be installed. No package
  # registry, so that only CMAKE_PREFIX_PATH can lead to a uvrt.
  cmake -S "$tmp/project" -B "$dir" -G Ninja \
    "-DCMAKE_PREFIX_PATH=$dest$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    "-DCMAKE_C_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" "$@"
}

configure "$tmp/build" "-DUVRT_WANT_VERSION=$version" "-DUVRT_EXPECT_VERSION=$version" > "$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "cmake could not configure the consumer"; }
cat "$tmp/configure.log"
# Where the package led: into the DESTDIR, although it was configured for $prefix.
for what in uvrt_config location includes; do
  value=$(sed -n "s/^-- .*: $what=//p" "$tmp/configure.log")
  case $value in
    "$dest/"*) ;;
    *) fail "$what is '$value', not in $dest" ;;
  esac
done
cmake --build "$tmp/build" --verbose

expect_output() {  # program expected-stdout
  out=$("$1") || fail "$1 exited with status $?"
  [ "$out" = "$2" ] || fail "$1 printed '$out', expected '$2'"
  echo "ok: $out"
}

for prog in consumer_c consumer_cpp; do
  exe="$tmp/build/$prog"
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  case $kind in
    shared)
      echo "$needed" | grep -qxF "$soname" || fail "$prog does not need $soname: $needed"
      # No LD_LIBRARY_PATH: CMake gives programs in its build tree a RUNPATH to the libraries
      # they link, here the DESTDIR's.
      resolved=$(ldd "$exe" | awk -v so="$soname" '$1 == so && $2 == "=>" { print $3 }')
      [ "$resolved" = "$libdir/$soname" ] || fail "$prog loads $soname from '$resolved', not $libdir/$soname"
      ;;
    static)
      if echo "$needed" | grep -q libuvrt; then fail "$prog, linked statically, needs $needed"; fi
      nm "$exe" | grep -q -e ' T uvrt_' -e ' T _ZN4uvrt' || fail "$prog has no uvrt code in it"
      ;;
  esac
done
expect_output "$tmp/build/consumer_c" "consumer_c: 49, EIO 'disk on fire'"
expect_output "$tmp/build/consumer_cpp" "consumer_cpp: 42"

# The version file: a later minor version is refused (during 0.x a minor release may break the
# API, from 1.0 on only a major one: README, "Versions and ABI").
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
if [ "$major" = 0 ]; then newer="0.$((minor + 1))"; else newer="$((major + 1)).0"; fi
if configure "$tmp/build-newer" "-DUVRT_WANT_VERSION=$newer" > "$tmp/newer.log" 2>&1; then
  cat "$tmp/newer.log"
  fail "find_package(uvrt $newer) accepted uvrt $version"
fi
# CMake names the package it considered and refused, with its version.
grep -q "uvrtConfig.cmake, version: $version" "$tmp/newer.log" ||
  { cat "$tmp/newer.log"; fail "find_package(uvrt $newer) failed for another reason than the version"; }
echo "ok: find_package(uvrt $newer) refuses uvrt $version"
