#!/usr/bin/env bash
# Installs what building the workspace needs and a fresh machine may lack:
# libclang, for kcp-sys's bindgen (kcp-sys compiles the C reference ikcp.c, which
# the conformance tests and benches run against). Does nothing if it is present.
set -euo pipefail

# bindgen loads the C library libclang.so / libclang-N.so; libclang-cpp (the C++
# interface, often installed alone with LLVM) does not count.
have_libclang() {
    ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so' ||
        compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
        compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null
}

if ! have_libclang; then
    echo "scripts/deps.sh: installing libclang-dev (needed by kcp-sys's bindgen)" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq libclang-dev >/dev/null
fi
