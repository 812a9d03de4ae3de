#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need and is
# missing (libclang for kcp-sys's bindgen, which builds the C reference ikcp.c), then
# runs `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

have_libclang() {
    ldconfig -p 2>/dev/null | grep -q 'libclang' ||
        compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}

if ! have_libclang; then
    echo "scripts/test.sh: installing libclang-dev (needed by kcp-sys's bindgen)" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq libclang-dev >/dev/null
fi

exec cargo test --workspace "$@"
