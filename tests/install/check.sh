#!/bin/sh
# Installs a built uvrt into a temporary DESTDIR (never the real prefix) and builds programs
# against it as users will, with nothing but `pkg-config uvrt`:
#   - consumer.c as strict C11 and consumer.cpp as C++20, linked to the installed shared library;
#   - the same two linked to the installed libuvrt.a, with `pkg-config --static` for the rest.
# It checks which libuvrt each program really uses (readelf, ldd) and runs them.
#
# Usage: check.sh BUILD_DIR [DEFAULT_LIBRARY [SANITIZE]]
#   DEFAULT_LIBRARY: the build's default_library: both (default), shared or static.
#   SANITIZE: the build's b_sanitize (default none); programs linked to an instrumented uvrt
#   are built with the same -fsanitize.
# Environment: MESON (default: meson), CC (default: cc), CXX (default: c++); CC and CXX may hold
# a command with arguments (e.g. "ccache gcc"). UVRT_SOVERSION (default: 0): meson.build's
# uvrt_soversion, the ABI policy's value (README, "Versions and ABI"), which the installed
# library's SONAME must carry.
set -eu
# Meson points LD_LIBRARY_PATH at its build dir for tests that use a shared library: the
# programs here must find the installed one, and only that.
unset LD_LIBRARY_PATH

build=$(cd "${1:?usage: check.sh BUILD_DIR [DEFAULT_LIBRARY [SANITIZE]]}" && pwd)
kinds=${2:-both}
sanitize=${3:-none}
here=$(cd "$(dirname "$0")" && pwd)
meson=${MESON:-meson}
cc=${CC:-cc}
cxx=${CXX:-c++}
soname=libuvrt.so.${UVRT_SOVERSION:-0}

for tool in "$meson" pkg-config "${cc%% *}" "${cxx%% *}" readelf ldd nm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
case $kinds in
  both) kinds='shared static' ;;
  shared | static) ;;
  *) echo "unknown default_library '$kinds'" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uvrt-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
dest="$tmp/dest"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$meson" install --destdir "$dest" --no-rebuild -C "$build"

# Everything went below DESTDIR, and nothing but uvrt itself was installed.
echo "installed:"
(cd "$dest" && find . ! -type d | sort | sed 's/^\./  /')
if (cd "$dest" && find . ! -type d) | grep -E '/tests?/|header|consumer'; then
  fail "test files were installed"
fi

# <uvrt_version.h> next to <uvrt.h>, which includes it.
uvrt_h=$(find "$dest" -name uvrt.h)
[ -n "$uvrt_h" ] || fail "no uvrt.h installed"
[ -f "$(dirname "$uvrt_h")/uvrt_version.h" ] || fail "no uvrt_version.h installed next to $uvrt_h"

pc=$(find "$dest" -name uvrt.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "no uvrt.pc installed"
[ "$(echo "$pc" | wc -l)" -eq 1 ] || fail "several uvrt.pc installed: $pc"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")

# -I and -L must point into DESTDIR: PKG_CONFIG_SYSROOT_DIR prefixes the .pc's paths with it.
PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
echo "uvrt.pc:"
sed 's/^/  /' "$pc"
cflags=$(pkg-config --cflags uvrt)
libs=$(pkg-config --libs uvrt)
static_libs=$(pkg-config --static --libs uvrt)
echo "pkg-config --cflags: $cflags"
echo "pkg-config --libs: $libs"
echo "pkg-config --static --libs: $static_libs"
case " $cflags " in *" -I$dest/"*) ;; *) fail "--cflags does not point into $dest: $cflags" ;; esac
case " $libs " in *" -L$libdir "*) ;; *) fail "--libs does not point to $libdir: $libs" ;; esac

c_flags="-std=c11 -pedantic-errors -Werror -Wall -Wextra -D_POSIX_C_SOURCE=200809L"
cxx_flags="-std=c++20 -pedantic-errors -Werror -Wall -Wextra"
if [ "$sanitize" != none ]; then
  c_flags="$c_flags -fsanitize=$sanitize"
  cxx_flags="$cxx_flags -fsanitize=$sanitize"
fi

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

run() {  # program expected-stdout
  out=$(LD_LIBRARY_PATH="$libdir" "$1") || fail "$1 exited with status $?"
  [ "$out" = "$2" ] || fail "$1 printed '$out', expected '$2'"
  echo "ok: $(basename "$1"): $out"
}

expected_c="consumer_c: 49, EIO 'disk on fire'"
expected_cpp="consumer_cpp: 42"

for kind in $kinds; do
  case $kind in
    shared)
      so="$libdir/$soname"
      [ -f "$so" ] || fail "no $so installed"
      actual=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
      [ "$actual" = "$soname" ] || fail "SONAME of the installed library is '$actual', the ABI policy's is $soname"
      echo "ok: SONAME $actual"
      if readelf -d "$so" | grep -E '\((RPATH|RUNPATH)\)'; then
        fail "the installed libuvrt.so keeps a build-time RPATH/RUNPATH"
      fi
      # shellcheck disable=SC2086 # CC, CXX and the flags are words
      $cc $c_flags $cflags "$here/consumer.c" -o "$tmp/consumer_c_shared" $libs
      # shellcheck disable=SC2086
      $cxx $cxx_flags $cflags "$here/consumer.cpp" -o "$tmp/consumer_cpp_shared" $libs
      for exe in "$tmp/consumer_c_shared" "$tmp/consumer_cpp_shared"; do
        needed "$exe" | grep -qxF "$soname" || fail "$exe does not need $soname"
        resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$exe" |
          awk -v so="$soname" '$1 == so && $2 == "=>" { print $3 }')
        [ "$resolved" = "$so" ] || fail "$exe loads $soname from '$resolved', not $so"
      done
      run "$tmp/consumer_c_shared" "$expected_c"
      run "$tmp/consumer_cpp_shared" "$expected_cpp"
      ;;
    static)
      archive="$libdir/libuvrt.a"
      [ -f "$archive" ] || fail "no $archive installed"
      # The installed archive instead of -luvrt, which would pick libuvrt.so where both exist;
      # everything else (-lstdc++, threads, libuv) from `pkg-config --static`.
      set --
      for word in $static_libs; do
        if [ "$word" = -luvrt ]; then set -- "$@" "$archive"; else set -- "$@" "$word"; fi
      done
      case " $* " in *" $archive "*) ;; *) fail "no -luvrt in --static --libs: $static_libs" ;; esac
      # shellcheck disable=SC2086
      $cc $c_flags $cflags "$here/consumer.c" -o "$tmp/consumer_c_static" "$@"
      # shellcheck disable=SC2086
      $cxx $cxx_flags $cflags "$here/consumer.cpp" -o "$tmp/consumer_cpp_static" "$@"
      for exe in "$tmp/consumer_c_static" "$tmp/consumer_cpp_static"; do
        if needed "$exe" | grep -q libuvrt; then fail "$exe, linked statically, needs libuvrt"; fi
        nm "$exe" | grep -q -e ' T uvrt_job_submit$' -e ' T _ZN4uvrt' || fail "$exe has no uvrt code in it"
      done
      run "$tmp/consumer_c_static" "$expected_c"
      run "$tmp/consumer_cpp_static" "$expected_cpp"
      ;;
  esac
done
