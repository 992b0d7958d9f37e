#!/bin/bash
# The quick-start demo: snapshot a generated tree, change it, write a layer,
# show what it holds, and apply both layers to prove the round trip.
#   tests/demo.sh [BUILD]
set -eu
build=${1:-build}
ls=$PWD/$build/layersnap
work=${LAYERSNAP_DEMO_DIR:-/tmp/layersnap-demo}
rm -rf "$work"
mkdir -p "$work"
root=$work/rootfs

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "generate a node_modules-like tree (2000 entries) in $root"
"$build/bench/gen-tree" --seed 7 --entries 2000 "$root"

step "first snapshot: a full layer of the tree and its manifest"
"$ls" diff "$root" -o "$work/layer0.tar" --manifest-out "$work/m0"

step "a build step changes the tree"
find "$root" -type f -name '*.js' | sort | head -n 5 | while read -r f; do echo "// patched" >>"$f"; done
victim=$(find "$root" -mindepth 2 -maxdepth 3 -type d | sort | sed -n 3p)
echo "deleting $victim"
rm -rf "$victim"
mkdir -p "$root/app" && echo 'console.log("hello")' >"$root/app/index.js"
chmod 0600 "$(find "$root" -type f -name '*.json' | sort | head -n 1)"

step "what changed (compare old manifest against the tree)"
"$ls" compare --mode full "$work/m0" "$root" | head -n 20 || true

step "the diff layer: only the changes, gzip-compressed, with an OCI descriptor"
"$ls" diff "$root" --base "$work/m0" -o "$work/layer1.tar.gz" --compress gzip \
	--manifest-out "$work/m1" --descriptor "$work/layer1.json"
tar -tvzf "$work/layer1.tar.gz" | head -n 20
echo "descriptor: $(cat "$work/layer1.json")"

step "apply both layers onto an empty directory and compare with the tree"
mkdir "$work/restored"
"$ls" apply "$work/layer0.tar" "$work/restored"
"$ls" apply "$work/layer1.tar.gz" "$work/restored"
if "$ls" compare --mode full --mtime-seconds "$work/m1" "$work/restored"; then
	echo "restored tree matches the snapshot"
else
	echo "restored tree differs (see above)" >&2
	exit 1
fi
