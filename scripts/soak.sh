#!/usr/bin/env bash
# The soak of issue 17: one `kcp-chat server` at a client count for a long time
# (default 30 minutes), loaded by `kcp-chat bench --server` in the secure protocol (the
# product's default; RAW=1 for raw KCP), sampling the server's RSS
# (from /proc/PID/status) every 10 s. Prints the bench report, then the RSS of the first
# and the last ten minutes (means) and their ratio: flat means within 5%.
#
#   scripts/soak.sh                 # 1000 clients, 30 minutes
#   CLIENTS=2000 MINUTES=30 scripts/soak.sh
#   RAW=1 scripts/soak.sh          # raw KCP
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -p kcp-chat
bin="${CARGO_TARGET_DIR:-target}/release/kcp-chat"
clients="${CLIENTS:-1000}"
minutes="${MINUTES:-30}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
mode=()
if [ -n "${RAW:-}" ]; then mode=(--raw); fi
KCP_CHAT_HOME="$work" "$bin" server --listen 127.0.0.1:0 "${mode[@]}" \
    --max-clients "$((clients + 16))" --ip-rate 1000000 --ip-burst 1000000 --ip-strikes 1000000 \
    --max-sessions-per-ip 1000000 --new-sessions-per-ip 100000 >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 100); do
    grep -q '^listening' "$work/server.out" && break
    sleep 0.1
done
addr="$(sed -n 's/^listening \(.*\)$/\1/p' "$work/server.out" | head -1)"
[ -n "$addr" ] || { echo "the server did not start:"; cat "$work/server.err"; exit 1; }
if [ -z "${RAW:-}" ]; then
    key="$(sed -n 's/^server key \([^ ]*\) .*$/\1/p' "$work/server.out" | head -1)"
    mode=(--server-key "$key")
fi
(
    while kill -0 "$server" 2>/dev/null; do
        awk '/^VmRSS/ {print $2}' "/proc/$server/status" >>"$work/rss.txt" 2>/dev/null || true
        sleep 10
    done
) &
"$bin" bench --server "$addr" "${mode[@]}" --clients "$clients" --duration "${minutes}m" --no-progress || true
python3 - "$work/rss.txt" "$minutes" <<'PY'
import sys
rss = [int(x) for x in open(sys.argv[1]).read().split()]
per10 = 60  # samples in ten minutes, one every 10 s
first, last = rss[:per10], rss[-per10:]
a, b = sum(first) / len(first), sum(last) / len(last)
print(f"RSS first 10 min {a / 1024:.1f} MiB, last 10 min {b / 1024:.1f} MiB, ratio {b / a:.3f} ({len(rss)} samples)")
PY
