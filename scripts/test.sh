#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the build and the tests need and is
# missing (scripts/deps.sh), then runs `cargo test --workspace`. Extra arguments go to
# cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
exec cargo test --workspace "$@"
