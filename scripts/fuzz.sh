#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 600 s), one after another,
# with cargo-fuzz on nightly. Crashes are copied to each crate's fuzz/regressions/,
# which `cargo test` replays on stable.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]   targets: input (kcp-core), frames (kcp-chat)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(input frames)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
status=0
for target in "${targets[@]}"; do
    case "$target" in
        input) dir="$root/kcp-core/fuzz" ;;
        frames) dir="$root/kcp-chat/fuzz" ;;
        *) echo "unknown target $target" >&2; exit 2 ;;
    esac
    cd "$dir"
    mkdir -p "corpus/$target" "artifacts/$target" regressions
    cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 || status=$?
    for crash in "artifacts/$target"/*; do
        [ -e "$crash" ] && cp "$crash" regressions/
    done
done
exit "$status"
