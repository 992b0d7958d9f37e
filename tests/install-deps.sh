#!/bin/sh
# Installs every build, test and benchmark dependency from Debian's packages.
# Idempotent; needs root (or sudo).
set -eu
# libclang-rt-dev: clang's runtimes for its default version (libFuzzer, ASan, UBSan), which
# clang only recommends: `make fuzz` links -fsanitize=fuzzer with them.
PKGS="build-essential clang libclang-rt-dev pkg-config git ca-certificates
 liburing-dev libarchive-dev libxxhash-dev xxhash libcmocka-dev libssl-dev zlib1g-dev libdeflate-dev libzstd-dev libjansson-dev
 zstd pigz gzip tar libarchive-tools umoci skopeo bfs findutils mtree-netbsd hyperfine time
 python3 attr libcap2-bin valgrind strace man-db groff-base"
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
# apt-get update first, always: a fresh machine's lists may be empty or stale.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
if [ -n "$missing" ]; then
	echo "installing:$missing"
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
	echo "all dependencies present"
fi
