#!/usr/bin/env bash
# Installs what building and testing the workspace needs and a fresh machine may lack:
# libclang, for kcp-sys's bindgen (kcp-sys compiles the C reference ikcp.c, which
# the conformance tests and benches run against), and redis-server, which kcp-chat's
# cluster tests start on a loopback port of their own. Does nothing if both are present.
set -euo pipefail

# bindgen loads the C library libclang.so / libclang-N.so; libclang-cpp (the C++
# interface, often installed alone with LLVM) does not count.
have_libclang() {
    ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so' ||
        compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
        compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null
}

missing=()
if ! have_libclang; then
    echo "scripts/deps.sh: installing libclang-dev (needed by kcp-sys's bindgen)" >&2
    missing+=(libclang-dev)
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "scripts/deps.sh: installing redis-server (started by kcp-chat's cluster tests)" >&2
    missing+=(redis-server)
fi

if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
