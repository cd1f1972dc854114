#!/bin/sh
# One-time set-up on a fresh Debian (12/13, Raspberry Pi OS bookworm) machine, idempotent:
# the Debian packages gridgate needs to build and test, a virtual environment in .venv, and the
# package itself with its C kernels compiled (a compile error fails here, loudly).
set -eu
cd "$(dirname "$0")/.."

need=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
command -v mosquitto_passwd >/dev/null 2>&1 || [ -x /usr/bin/mosquitto_passwd ] || need="$need mosquitto"
command -v make >/dev/null 2>&1 || need="$need make"
# systemd-analyze, -sysusers and -tmpfiles check the units and the install; /bin/kill (procps)
# is what the units' ExecReload calls.
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
[ -x /bin/kill ] || need="$need procps"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
# `make lint` checks the C style of native/ (.clang-format) with it.
command -v clang-format >/dev/null 2>&1 || need="$need clang-format"
# The power-cut test (hil_tests/test_power_cut.py) mounts tests/powercut_fs.py, a FUSE file system
# written with fusepy, which loads libfuse2; fusermount unmounts it.
/sbin/ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || need="$need libfuse2"
command -v fusermount >/dev/null 2>&1 || need="$need fuse"
command -v python3 >/dev/null 2>&1 || need="$need python3"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1 || need="$need python3-dev"
if [ -n "$need" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages:$need"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel cffi
# Editable, so a developer's edits take effect; the C kernels are built in place by the same step.
# A gridgate.egg-info left in the checkout by an earlier install shadows the installed metadata
# (the config section registry reads its entry points), so it goes first.
rm -rf gridgate.egg-info
.venv/bin/python -m pip install -q --no-build-isolation -e '.[test,dev]'
.venv/bin/python -c 'import gateway.native.ffi as n; print("setup: ok, native kernels", n.EXPECTED_NATIVE_VERSION)'
