#!/bin/sh
# Checks that the shared library exports uvrt's public API and nothing else:
#   - every uvrt_* function declared UVRT_EXTERN in <uvrt.h> and <uvrt_version.h> (read from its
#     template, uvrt_version.h.in), and no other C symbol;
#   - in namespace uvrt, only the functions the public headers declare UVRT_EXTERN and the
#     members, vtables and typeinfo of the classes they mark UVRT_EXTERN; every such function
#     must be there. Anything else (uvrt::detail::core's methods, start_threadpool, the C API's
#     uvrt::c_api internals, a uvrt template instantiation) is an internal that leaked;
#   - weak or unique std:: / __gnu_cxx:: template instantiations, which any C++ library exports.
#
# Usage: symbols.sh LIBUVRT_SO UVRT_SOURCE_ROOT
set -eu

so=${1:?usage: symbols.sh LIBUVRT_SO UVRT_SOURCE_ROOT}
src=${2:?usage: symbols.sh LIBUVRT_SO UVRT_SOURCE_ROOT}

for tool in nm c++filt; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
[ -f "$so" ] || { echo "FAIL: no $so" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/uvrt-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# What the public headers export: "F qualified::name" for functions, "C qualified::name" for
# classes, with the namespaces tracked from `namespace x {` and `}  // namespace x` lines.
headers=$(find "$src/runtime/include/uvrt" -name '*.hpp' -o -name '*.h' | sort)
# shellcheck disable=SC2086 # paths without spaces, one per word
awk '
  /^namespace [A-Za-z_:]+ \{/ { ns[++depth] = $2; next }
  /^\}[[:space:]]*\/\/ namespace/ { if (depth > 0) depth--; next }
  function prefix(   p, i) { p = ""; for (i = 1; i <= depth; i++) p = p ns[i] "::"; return p }
  /^[[:space:]]*(class|struct) UVRT_EXTERN [A-Za-z_]/ {
    name = $0; sub(/^[[:space:]]*(class|struct) UVRT_EXTERN /, "", name); sub(/[^A-Za-z0-9_].*/, "", name)
    print "C " prefix() name; next
  }
  /^[[:space:]]*(\[\[[^]]*\]\][[:space:]]*)?UVRT_EXTERN / {
    decl = $0; sub(/.*UVRT_EXTERN /, "", decl)
    if (match(decl, /[A-Za-z_][A-Za-z0-9_]*\(/)) print "F " prefix() substr(decl, RSTART, RLENGTH - 1)
  }
' $headers "$src/bindings/c/include/uvrt.h" "$src/bindings/c/include/uvrt_version.h.in" | sort -u > "$tmp/api"

grep -q '^F uvrt_' "$tmp/api" || { echo "FAIL: found no UVRT_EXTERN C function in uvrt.h" >&2; exit 1; }
grep -q '^C uvrt::' "$tmp/api" || { echo "FAIL: found no UVRT_EXTERN class in the C++ headers" >&2; exit 1; }
echo "public API declared by the headers:"
sed 's/^/  /' "$tmp/api"

nm -D --defined-only "$so" | awk 'NF == 3 { print $2 "\t" $3 }' > "$tmp/raw"
cut -f2 "$tmp/raw" | c++filt > "$tmp/demangled"
paste "$tmp/raw" "$tmp/demangled" > "$tmp/symbols"
echo "$(wc -l < "$tmp/symbols") symbols exported by $so"

awk -F '\t' '
  FNR == NR { kind = substr($0, 1, 1); name = substr($0, 3); api[kind, name] = 1; if (kind == "F") funcs[name] = 1; next }
  {
    type = $1; mangled = $2; demangled = $3
    if (mangled ~ /^uvrt_/) {
      if (("F", mangled) in api) seen[mangled] = 1
      else { print "FAIL: C symbol not declared UVRT_EXTERN in uvrt.h: " type " " mangled; bad++ }
      next
    }
    if (mangled ~ /^_Z(T[IVS])?Z?N?K?4uvrt/) {
      entity = demangled
      sub(/^(typeinfo name for |typeinfo for |vtable for |VTT for |guard variable for |non-virtual thunk to |virtual thunk to )/, "", entity)
      sub(/\(.*/, "", entity)
      if (entity ~ /[<>]/) { print "FAIL: uvrt template instantiation exported: " type " " demangled; bad++; next }
      owner = entity; sub(/::[^:]*$/, "", owner)
      if (("F", entity) in api) { seen[entity] = 1; next }
      if (("C", entity) in api || ("C", owner) in api) next
      print "FAIL: internal uvrt symbol exported (not UVRT_EXTERN in a public header): " type " " demangled
      bad++
      next
    }
    if (mangled ~ /^_Z(T[IVS])?Z?N?K?(S[tabsiod]|9__gnu_cxx)/) {
      if (type ~ /^[WVuvw]$/) { std++; next }
      print "FAIL: strong (non-weak) std symbol exported: " type " " demangled; bad++; next
    }
    print "FAIL: symbol outside uvrt and std exported: " type " " demangled
    bad++
  }
  END {
    for (f in funcs) if (!(f in seen)) { print "FAIL: declared UVRT_EXTERN but not exported: " f; bad++ }
    printf "%d weak std:: instantiations (fine)\n", std
    exit bad > 0
  }
' "$tmp/api" "$tmp/symbols"
echo "ok: $so exports the public API only"
