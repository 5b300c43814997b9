#!/usr/bin/env bash
# tests/fuzz/run.sh: fuzzes the C API, then the HTTP service's request parser, each for a bounded
# time with libFuzzer, under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer, and
# fails on any crash. CI runs it as it is. The parser's target (fuzz_http_request.cpp) works like
# the C API's below, on build-fuzz/fuzz-http-corpus from tests/fuzz/http-corpus.
#
#   tests/fuzz/run.sh [SECONDS]          default 60; then about a minute more to build, once
#
# It configures build-fuzz/ (clang, -Dfuzz=enabled, -Db_sanitize=address,undefined, a static
# library; FUZZ_BUILD=DIR for another directory), builds the fuzz target fuzz_c_api
# (tests/fuzz/fuzz_c_api.c, whose top comment defines the input format and what is checked),
# and runs it on build-fuzz/fuzz-corpus: a working copy of tests/fuzz/corpus that keeps what
# earlier runs found, so the committed corpus is never modified. Needs clang and Debian's
# libclang-rt-14-dev (libFuzzer and the sanitizers' runtimes).
#
# Exit status 0 if SECONDS passed without a crash. On a crash, libFuzzer's report is on stderr,
# the input is saved as build-fuzz/fuzz-artifacts/crash-<sha1> (or leak-, timeout-, oom-) and
# the exit status is libFuzzer's (nonzero).
#
# Longer runs: give more seconds (tests/fuzz/run.sh 3600), or run the binary yourself with
# any libFuzzer flags, e.g. one process per core for an hour:
#   build-fuzz/tests/fuzz/fuzz_c_api -max_total_time=3600 -timeout=30 -max_len=1024 \
#     -jobs=2 -workers=2 build-fuzz/fuzz-corpus tests/fuzz/corpus
# A crash becomes a regression test:
#   UVRT_FUZZ_TRACE=1 build-fuzz/tests/fuzz/fuzz_c_api CRASH-FILE        (replays it, with a trace)
#   build-fuzz/tests/fuzz/fuzz_c_api -minimize_crash=1 -max_total_time=60 \
#     -exact_artifact_path=tests/fuzz/regressions/NAME CRASH-FILE        (a smaller input)
# then commit tests/fuzz/regressions/NAME: the fuzz_corpus test (meson test) replays it in every
# build from then on. To refresh the committed corpus after a long run, keeping it small (the
# hand-written seeds, plus the fewest inputs that reach every edge of uvrt the run reached):
#   ninja -C build-fuzz tests/fuzz/fuzz_c_api_merge
#   mkdir new && cp tests/fuzz/corpus/seed-* new/
#   build-fuzz/tests/fuzz/fuzz_c_api_merge -merge=1 -use_counters=0 new build-fuzz/fuzz-corpus
# and commit new/ as tests/fuzz/corpus (tests/fuzz/seeds.py rewrites the seed-* files).
set -euo pipefail

seconds=${1:-60}
case $seconds in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" "$root" \
    -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false \
    -Ddefault_library=static -Dtests=disabled -Dbench=disabled --buildtype=debugoptimized
fi
# The targets: the C API's, and the HTTP service's request parser when the service is built
# (libhttp-parser-dev and libsqlite3-dev installed). Each is fuzzed for SECONDS.
targets=(fuzz_c_api)
if ninja -C "$build" -t query tests/fuzz/fuzz_http_request >/dev/null 2>&1; then
  targets+=(fuzz_http_request)
else
  echo "not fuzzing fuzz_http_request: the HTTP service is not built (libhttp-parser-dev, libsqlite3-dev?)"
fi
# At most two compile jobs: the machines this runs on have two cores, shared.
ninja -C "$build" -j2 "${targets[@]/#/tests/fuzz/}"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for target in "${targets[@]}"; do
  case $target in
    fuzz_c_api) committed=corpus corpus=$build/fuzz-corpus ;;
    fuzz_http_request) committed=http-corpus corpus=$build/fuzz-http-corpus ;;
  esac
  artifacts=$build/fuzz-artifacts
  mkdir -p "$corpus" "$artifacts"
  find "$root/tests/fuzz/$committed" -maxdepth 1 -type f ! -name README -exec cp -n {} "$corpus"/ \;
  echo "fuzzing for $seconds s: $build/tests/fuzz/$target, corpus $corpus"
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=30 -max_len=1024 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "$target failed (exit status $status); inputs kept in $artifacts:" >&2
    ls -l "$artifacts" >&2
    echo "replay one with: UVRT_FUZZ_TRACE=1 $build/tests/fuzz/$target FILE (the trace: fuzz_c_api only)" >&2
    break
  fi
done
exit "$status"
