#!/usr/bin/env bash
# The capacity table of docs/bench/chat.md: for each client count, the bare-UDP floor
# (`kcp-chat bench --bare-udp`, the physical ceiling of this room traffic on this
# machine, with as many relay threads as the chat has loops) and the chat with one and
# two event-loop threads, back to back in one run.
# Prints one table row per client count: the chat's deliveries/s as a fraction of the
# floor's, what it lost, its p99, its retransmissions, who was refused or kicked, and
# the CPU of the server and of the load generator (the bench's own client threads).
#
#   scripts/bench-capacity.sh                      # 500 1000 2000 3000 clients
#   CLIENTS="1000 2000" scripts/bench-capacity.sh --duration 20s
#
# Extra arguments go to every run (default: --rate 10 --room-size 10 --duration 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -p kcp-chat
bin="${CARGO_TARGET_DIR:-target}/release/kcp-chat"
args=(--rate 10 --room-size 10 --duration 10s)
if [ $# -gt 0 ]; then args=("$@"); fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for n in ${CLIENTS:-500 1000 2000 3000}; do
    for threads in 1 2; do
        "$bin" bench --bare-udp --clients "$n" --server-threads "$threads" "${args[@]}" --json --no-progress >"$out/bare$threads-$n.json" || true
        "$bin" bench --clients "$n" --server-threads "$threads" "${args[@]}" --json --no-progress >"$out/chat$threads-$n.json" || true
    done
done
python3 - "$out" ${CLIENTS:-500 1000 2000 3000} <<'PY'
import json, os, sys
out, counts = sys.argv[1], sys.argv[2:]
print("| clients | bare UDP deliveries/s | threads | chat deliveries/s | of the floor | admitted | refused busy | lost | p99 ms | server retransmits | kicked | server CPU % | load CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for n in counts:
    for threads in (1, 2):
        bare = json.load(open(os.path.join(out, f"bare{threads}-{n}.json")))
        r = json.load(open(os.path.join(out, f"chat{threads}-{n}.json")))
        side = r.get("server_side") or {}
        retrans = 100.0 * side.get("retransmits", 0) / max(side.get("messages_out", 0), 1)
        load = r.get("load_cpu") or {}
        print(f"| {n} | {bare['deliveries_per_sec']:.0f} (lost {bare['lost']}) | {threads} "
              f"| {r['deliveries_per_sec']:.0f} | {r['deliveries_per_sec'] / max(bare['deliveries_per_sec'], 1):.2f} "
              f"| {r['clients_ok']} | {r.get('refused_busy', 0)} | {r['lost']} | {r['latency_ms']['p99']:.0f} "
              f"| {retrans:.1f}% | {side.get('kicked', 0)} | {r['server_cpu']['percent_of_one_core']:.0f} "
              f"| {load.get('percent_of_one_core', 0):.0f} |")
PY
