#!/bin/sh
# Builds the tokio peer offline with Debian's Rust toolchain and Debian's tokio sources, and prints
# the path of the binary. Exits 77 (the usual "skipped" status) when cargo or librust-tokio-dev is
# missing, so a runner can skip this peer instead of failing. Set CARGO_TARGET_DIR to an absolute
# path to build outside the source tree.
#
# Debian's cargo and rustc are named by path: a rustup install earlier on PATH would otherwise
# provide rustc, and a fresh Debian machine has no rustup.
set -eu
if [ ! -x /usr/bin/cargo ]; then
  echo "skipping tokio: cargo not installed (apt-get install cargo librust-tokio-dev)"
  exit 77
fi
if ! ls -d /usr/share/cargo/registry/tokio-1.* >/dev/null 2>&1; then
  echo "skipping tokio: librust-tokio-dev not installed (apt-get install cargo librust-tokio-dev)"
  exit 77
fi
# Cargo reads .cargo/config.toml from the directory it runs in, not from the manifest's.
cd "$(dirname "$0")"
RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --offline --quiet
echo "${CARGO_TARGET_DIR:-$(pwd)/target}/release/peer-tokio-spawn-blocking"
