#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 600 s), one after another,
# with cargo-fuzz on nightly. Crashes are copied to each crate's fuzz/regressions/
# (kcp-net: fuzz/regressions/TARGET/), which `cargo test` replays on stable.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   targets: input (kcp-core), frames (kcp-chat),
#            secure_receive, handshake_responder, dispatch (kcp-net)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(input frames secure_receive handshake_responder dispatch)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
status=0
for target in "${targets[@]}"; do
    case "$target" in
        input) dir="$root/kcp-core/fuzz" saved=regressions sanitizer=address ;;
        frames) dir="$root/kcp-chat/fuzz" saved=regressions sanitizer=address ;;
        # No AddressSanitizer: these paths are safe Rust (the driver's dispatch runs on
        # the portable backend, not the unsafe mmsg one), and ASan's cost on their
        # Diffie-Hellman and allocations takes them below 5,000 execs/s.
        secure_receive | handshake_responder | dispatch)
            dir="$root/kcp-net/fuzz" saved="regressions/$target" sanitizer=none ;;
        *) echo "unknown target $target" >&2; exit 2 ;;
    esac
    cd "$dir"
    mkdir -p "corpus/$target" "artifacts/$target" "$saved"
    cargo +nightly fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 || status=$?
    for crash in "artifacts/$target"/*; do
        [ -e "$crash" ] && cp "$crash" "$saved/"
    done
done
exit "$status"
