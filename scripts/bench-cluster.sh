#!/usr/bin/env bash
# The cluster bench of docs/bench/chat.md: the same clients against one server without
# Redis, one cluster node with its Redis, and two cluster nodes (every room spans them),
# back to back in one run, each with a redis-server of its own on a loopback port.
# Prints one JSON report per line-up, then the table. Arguments, if any, replace the
# bench settings (default: --clients 200 --rate 5 --room-size 10 --duration 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release -p kcp-chat
bin="${CARGO_TARGET_DIR:-target}/release/kcp-chat"
args=(--clients 200 --rate 5 --room-size 10 --duration 10s)
if [ $# -gt 0 ]; then args=("$@"); fi
out="$(mktemp -d)"
"$bin" bench "${args[@]}" --json --no-progress >"$out/single.json"
"$bin" bench "${args[@]}" --redis --json --no-progress >"$out/one-node.json"
"$bin" bench "${args[@]}" --nodes 2 --json --no-progress >"$out/two-nodes.json"
cat "$out"/*.json
python3 - "$out" <<'PY'
import json, sys, os
rows = [("1 server, no Redis", "single.json"), ("1 node + Redis", "one-node.json"),
        ("2 nodes + Redis", "two-nodes.json")]
print("| line-up | clients ok | delivered | lost | dup | p50 ms | p99 ms | cross-node p99 ms | servers CPU % | Redis CPU % | events per pipeline |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, file in rows:
    r = json.load(open(os.path.join(sys.argv[1], file)))
    cross = r.get("cross_node_latency_ms")
    redis = r.get("redis_cpu")
    print(f"| {name} | {r['clients_ok']}/{r['clients']} | {r['delivered']}/{r['expected']} | {r['lost']} | {r['duplicates']} "
          f"| {r['latency_ms']['p50']:.1f} | {r['latency_ms']['p99']:.1f} "
          f"| {cross['p99']:.1f} |" if cross else
          f"| {name} | {r['clients_ok']}/{r['clients']} | {r['delivered']}/{r['expected']} | {r['lost']} | {r['duplicates']} "
          f"| {r['latency_ms']['p50']:.1f} | {r['latency_ms']['p99']:.1f} | – |", end="")
    b = r.get("redis_batching")
    per = f"{b['events'] / max(b['pipelines'], 1):.1f}" if b else "–"
    print(f" {r['server_cpu']['percent_of_one_core']:.0f} | {redis['percent_of_one_core']:.0f} | {per} |" if redis else
          f" {r['server_cpu']['percent_of_one_core']:.0f} | – | – |")
PY
rm -rf "$out"
