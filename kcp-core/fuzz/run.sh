#!/usr/bin/env bash
# Fuzzes `Kcp::input` for a bounded time (default 600 s) with cargo-fuzz on nightly.
# Crashes are copied to regressions/, which `cargo test` replays on stable.
#   usage: kcp-core/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/input artifacts/input regressions
status=0
cargo +nightly fuzz run input corpus/input -- -max_total_time="$seconds" -max_len=4096 || status=$?
for crash in artifacts/input/*; do
    [ -e "$crash" ] && cp "$crash" regressions/
done
exit "$status"
