#!/bin/sh
# Fails if a public header is not in tests/headers/meson.build's list, so that every header
# shipped is compiled on its own (the compilation itself happens at build time). A header generated
# from a template (uvrt_version.h from uvrt_version.h.in) counts under its installed name.
#
# Usage: listed.sh UVRT_SOURCE_ROOT HEADER...   (headers as included: uvrt.h, uvrt/future.hpp...)
set -eu

src=${1:?usage: listed.sh UVRT_SOURCE_ROOT HEADER...}
shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uvrt-headers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for dir in "$src/runtime/include" "$src/bindings/c/include"; do
  (cd "$dir" && find . -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.h.in' \) | sed 's|^\./||; s|\.in$||')
done | sort -u > "$tmp/shipped"
printf '%s\n' "$@" | sort -u > "$tmp/listed"

missing=$(comm -23 "$tmp/shipped" "$tmp/listed")
stale=$(comm -13 "$tmp/shipped" "$tmp/listed")
[ -z "$stale" ] || echo "listed but not shipped (remove from tests/headers/meson.build): $stale"
if [ -n "$missing" ]; then
  echo "FAIL: public headers not compiled on their own (add to tests/headers/meson.build):" >&2
  echo "$missing" >&2
  exit 1
fi
[ -z "$stale" ] || exit 1
echo "ok: $(wc -l < "$tmp/shipped") public headers, each compiled on its own at build time"
