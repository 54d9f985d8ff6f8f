#!/usr/bin/env bash
# Makes sure the Debian packages ringraft builds against are installed.
# Run by `make` before anything is built: silent when all is present; when something is
# missing it installs it (as root) or prints the exact apt-get line to run and fails.
set -u

# pkg-config module -> Debian package (openssl: libssl + libcrypto, the TLS of net/ and cli/;
# fuse3: the power-cut file system of tests/powercut, `make powercut`)
pc_pkgs="libuv:libuv1-dev lmdb:liblmdb-dev libprotobuf-c:libprotobuf-c-dev check:check libxxhash:libxxhash-dev libmicrohttpd:libmicrohttpd-dev openssl:libssl-dev fuse3:libfuse3-dev"
# command -> Debian package (faketime brings libfaketime: jepsen-lite's clock nemesis; clang
# builds the libFuzzer harnesses of tests/fuzz, `make fuzz`; fusermount3 mounts and unmounts
# tests/powercut's file system)
cmd_pkgs="pkg-config:pkg-config openssl:openssl protoc-c:protobuf-c-compiler mdb_stat:lmdb-utils redis-cli:redis-tools redis-benchmark:redis-tools faketime:faketime clang:clang fusermount3:fuse3"
# tests only: Python module (of Debian's /usr/bin/python3) -> Debian package (the RESP port's
# integration test uses python3-redis; test_metrics parses /metrics with the Prometheus client's parser)
py_pkgs="redis:python3-redis prometheus_client.parser:python3-prometheus-client"

missing=""
for pair in $cmd_pkgs; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
for pair in $py_pkgs; do
  /usr/bin/python3 -c "import ${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# the fuzzing runtime (libclang_rt.fuzzer) of the clang installed, packaged apart from clang
if command -v clang >/dev/null 2>&1; then
  [ -e "$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ] ||
    missing="$missing libclang-rt-dev"
else
  missing="$missing libclang-rt-dev"
fi
if command -v pkg-config >/dev/null 2>&1; then
  for pair in $pc_pkgs; do
    pkg-config --exists "${pair%%:*}" 2>/dev/null || missing="$missing ${pair#*:}"
  done
else
  for pair in $pc_pkgs; do missing="$missing ${pair#*:}"; done
fi
[ -z "$missing" ] && exit 0

missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" != 0 ]; then
  echo "deps: run as root:  apt-get update && apt-get install -y $missing" >&2
  exit 1
fi
echo "deps: installing them (apt-get update, then apt-get install -y $missing)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || { echo "deps: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -qq $missing >&2 || { echo "deps: apt-get install failed" >&2; exit 1; }
echo "deps: installed" >&2
