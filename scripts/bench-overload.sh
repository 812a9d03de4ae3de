#!/usr/bin/env bash
# The overload table of docs/bench/chat.md: twice the chat's capacity, joining while the
# others talk (`kcp-chat bench --ramp`), so admission control meets every join at the
# load of those before it. For one and two event-loop threads (2x the capacity of each:
# CAPACITY clients a loop), ROUNDS runs each, back to back.
# Prints one table row per run: who was admitted and who refused busy (and for which
# signal), what the admitted lost, their latency, the server's retransmissions, kicks,
# the loop's highest busy share, and the CPU of the server and of the load generator.
#
#   scripts/bench-overload.sh                         # CAPACITY=1000 ROUNDS=3
#   CAPACITY=800 ROUNDS=1 scripts/bench-overload.sh --duration 20s
#
# Extra arguments go to every run (default: --rate 10 --room-size 10 --duration 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -p kcp-chat
bin="${CARGO_TARGET_DIR:-target}/release/kcp-chat"
capacity="${CAPACITY:-1000}"
rounds="${ROUNDS:-3}"
args=(--rate 10 --room-size 10 --duration 10s)
if [ $# -gt 0 ]; then args=("$@"); fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
    for threads in 1 2; do
        n=$((2 * capacity * threads))
        # A join every 10 ms per loop: the ramp is as long as the offered clients need.
        ramp="$((n / 100 / threads))s"
        "$bin" bench --clients "$n" --server-threads "$threads" --ramp "$ramp" "${args[@]}" \
            --json --no-progress >"$out/run-$round-$threads.json" || true
    done
done
python3 - "$out" "$rounds" <<'PY'
import json, os, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print("| offered | threads | ramp s | admitted | refused busy (load, lag, retransmits) | lost | p50 ms | p99 ms | server retransmits | kicked | highest busy share | server CPU % | load CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for threads in (1, 2):
    for round in range(1, rounds + 1):
        r = json.load(open(os.path.join(out, f"run-{round}-{threads}.json")))
        s = r.get("server_side") or {}
        busy, load, retr = s.get("refused_busy", 0), s.get("refused_busy_load", 0), s.get("refused_busy_retransmits", 0)
        retrans = 100.0 * s.get("retransmits", 0) / max(s.get("messages_out", 0), 1)
        lat = r["latency_ms"]
        print(f"| {r['clients']} | {threads} | {r['ramp_s']:.0f} | {r['clients_ok']} "
              f"| {r['refused_busy']} ({load}, {busy - load - retr}, {retr}) | {r['lost']} "
              f"| {lat['p50']:.0f} | {lat['p99']:.0f} | {retrans:.1f}% | {s.get('kicked', 0)} "
              f"| {100 * s.get('max_busy_share', 0):.0f}% | {r['server_cpu']['percent_of_one_core']:.0f} "
              f"| {(r.get('load_cpu') or {}).get('percent_of_one_core', 0):.0f} |")
PY
